/**
 * A private `XDG_RUNTIME_DIR` for a process started without one. The Vulkan loader (and Mesa's
 * window-system code) that WebGPU loads under Deno print `error: XDG_RUNTIME_DIR is invalid or not
 * set in the environment.` to stderr, twice, when it is unset (cron, `env -i`, some containers and
 * `su` sessions) although the run succeeds; `sd` promises that every line on stderr is its own.
 * So before the GPU adapter is requested, an unset (or empty) `XDG_RUNTIME_DIR` is pointed at a
 * fresh folder of this process's (mode 0700, as the XDG spec asks of the runtime directory),
 * removed when the process exits. A set one is left as it is.
 *
 * @module
 */

let made: string | null = null;

/**
 * Sets `XDG_RUNTIME_DIR` to a private temporary folder when it is unset or empty; returns that
 * folder, or null when the variable was set already (or cannot be set: then the loader's lines
 * may appear, which harms nothing). Calling it again reuses the folder.
 */
export function ensureRuntimeDir(): string | null {
  if (made !== null) return made;
  try {
    if (Deno.env.get("XDG_RUNTIME_DIR")) return null;
    const dir = Deno.makeTempDirSync({ prefix: "sd-runtime-" });
    if (Deno.build.os !== "windows") Deno.chmodSync(dir, 0o700);
    Deno.env.set("XDG_RUNTIME_DIR", dir);
    made = dir;
    globalThis.addEventListener("unload", removeRuntimeDir);
    return dir;
  } catch {
    return null; // no --allow-env or no writable temp folder: carry on without one
  }
}

/** Removes the folder {@linkcode ensureRuntimeDir} made (at exit; also safe to call earlier). */
export function removeRuntimeDir(): void {
  if (made === null) return;
  try {
    Deno.removeSync(made, { recursive: true });
  } catch {
    // already gone
  }
  made = null;
}
