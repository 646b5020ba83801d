/** How both stores remove what `scratch` and `scratchFile` handed out (not exported from the package). */
import fsp from 'node:fs/promises';

/**
 * A scratch folder, usually empty by now (the output was moved out of it): one rmdir, and the
 * recursive removal (two lstats and a walk) only when something is left in it.
 */
export async function removeScratchDir(dir: string): Promise<void> {
  try {
    await fsp.rmdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/** A scratch file, if it is still there. */
export async function removeScratchFile(file: string): Promise<void> {
  await fsp.unlink(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}
