/** Response shapes of the Convertly dialect (API.md §2.2–2.3). */
import type { FileErrorCode } from './errors.ts';

export type JobStatus = 'pending' | 'processing' | 'completed' | 'failed';
export type FileStatus = 'pending' | 'processing' | 'completed' | 'failed';

export interface FileResult {
  index: number;
  filename: string;
  status: FileStatus;
  mimeType: string | null;
  format: string | null;
  originalSize: number;
  finalSize: number | null;
  savedPercent: number | null;
  appliedQuality: number | null;
  width?: number;
  height?: number;
  durationSeconds?: number;
  storedFileId: string | null;
  downloadUrl: string | null;
  progress: number;
  notes?: string[];
  /** Compress target-size: the output is at or under targetBytes. */
  targetMet?: boolean;
  /** Compress target-size: why the target could not be met. */
  targetReason?: string;
  /** Compress: encodes tried for this result. */
  encodes?: number;
  error?: { code: FileErrorCode; message: string };
}

export interface JobDetail {
  jobId: string;
  jobType: 'convert' | 'compress';
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
export interface SyncFile extends Partial<Pick<FileResult, 'width' | 'height' | 'durationSeconds' | 'notes' | 'targetMet' | 'targetReason' | 'encodes'>> {
  filename: string;
  originalSize: number;
  finalSize: number;
  savedPercent: number;
  mimeType: string;
  downloadUrl: string;
  appliedQuality: number | null;
  storedFileId: string | null;
}
