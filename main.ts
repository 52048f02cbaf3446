/** `sd` command-line entry: parse, validate, run, write. */
if (import.meta.main) {
  console.error("sd: not yet wired");
  Deno.exit(1);
}
