// archiver 8 ships ESM without type declarations; this is the part Kiln uses.
declare module 'archiver' {
  import type { Readable, Transform } from 'node:stream';
  interface EntryData {
    name: string;
    date?: Date;
    mode?: number;
    prefix?: string;
    store?: boolean;
  }
  class Archiver extends Transform {
    append(source: Readable | Buffer | string, data: EntryData): this;
    file(filepath: string, data: EntryData): this;
    directory(dirpath: string, destpath: string | false): this;
    finalize(): Promise<void>;
    pointer(): number;
    abort(): this;
  }
  export class ZipArchive extends Archiver {
    constructor(options?: { zlib?: { level?: number }; store?: boolean; forceZip64?: boolean });
  }
  export class TarArchive extends Archiver {
    constructor(options?: { gzip?: boolean; gzipOptions?: { level?: number } });
  }
}
