/** Response shapes of the Convertly dialect (API.md §2.2–2.3). */
import type { FileErrorCode } from './errors.ts';
import type { FileResultExtras } from './file-result.ts';

export type JobStatus = 'pending' | 'processing' | 'completed' | 'failed';
export type FileStatus = 'pending' | 'processing' | 'completed' | 'failed';

/** One file of a job (`results[]`): fixed fields, then the extras its stored result has (file-result.ts). */
export interface FileResult extends FileResultExtras {
  index: number;
  filename: string;
  status: FileStatus;
  mimeType: string | null;
  format: string | null;
  originalSize: number;
  finalSize: number | null;
  savedPercent: number | null;
  appliedQuality: number | null;
  storedFileId: string | null;
  downloadUrl: string | null;
  progress: number;
  error?: { code: FileErrorCode; message: string };
}

export interface JobDetail {
  jobId: string;
  jobType: 'convert' | 'compress';
  /** The media tool the job runs (`POST /api/media/<tool>`); absent for conversions. */
  tool?: string;
  status: JobStatus;
  totalFiles: number;
  completedFiles: number;
  failedFiles: number;
  progress: number;
  errorMessage: string | null;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  expiresAt: string | null;
  results: FileResult[];
  archive: { filename: string; size: number; downloadUrl: string } | null;
}

export type JobSummary = Omit<JobDetail, 'results' | 'archive'>;

/** One file of a sync reply: the published fields, plus the same extras a JobDetail result carries. */
export interface SyncFile extends FileResultExtras {
  filename: string;
  originalSize: number;
  finalSize: number;
  savedPercent: number;
  mimeType: string;
  downloadUrl: string;
  appliedQuality: number | null;
  storedFileId: string | null;
}
