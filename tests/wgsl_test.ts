import { assert, assertEquals, assertThrows } from "../src/std/assert.ts";
import { expandIncludes, kernelSource, parseBindings, specialize } from "../src/gpu/wgsl.ts";

/** A reader over in-memory snippets, counting reads. */
function snippets(files: Record<string, string>) {
  const reads: string[] = [];
  const read = (path: string) => {
    reads.push(path);
    const text = files[path];
    if (text === undefined) throw new Deno.errors.NotFound(`no such file: ${path}`);
    return text;
  };
  return { read, reads };
}

Deno.test("wgsl include: nested includes are pasted in place, in order", () => {
  const { read } = snippets({
    "common/outer.wgsl": 'fn outer() {}\n#include "inner.wgsl"  // the inner part\n',
    "common/inner.wgsl": "fn inner() {}\n",
  });
  const out = expandIncludes('// head\n#include "outer.wgsl"\nfn main() {}', "k.wgsl", read);
  assertEquals(out, "// head\nfn outer() {}\nfn inner() {}\nfn main() {}");
});

Deno.test("wgsl include: a snippet is pasted once per kernel, also through nesting and cycles", () => {
  const { read, reads } = snippets({
    "common/a.wgsl": 'fn a() {}\n#include "shared.wgsl"\n#include "b.wgsl"',
    "common/b.wgsl": '#include "a.wgsl"\n#include "shared.wgsl"\nfn b() {}',
    "common/shared.wgsl": "fn shared() {}",
  });
  const out = expandIncludes(
    '#include "shared.wgsl"\n#include "a.wgsl"\n  #include "shared.wgsl"\n',
    "k.wgsl",
    read,
  );
  assertEquals(out.match(/fn shared\(\)/g)?.length, 1);
  assertEquals(out.match(/fn a\(\)/g)?.length, 1);
  assertEquals(out.match(/fn b\(\)/g)?.length, 1);
  assertEquals(reads.sort(), ["common/a.wgsl", "common/b.wgsl", "common/shared.wgsl"]);
  assert(!/^\s*#include/m.test(out), out);
});

Deno.test("wgsl include: a missing snippet names the including file and the file it looked for", () => {
  const { read } = snippets({ "common/outer.wgsl": '#include "nowhere.wgsl"' });
  const e = assertThrows(
    () => expandIncludes('#include "outer.wgsl"', "k.wgsl", read),
    'kernels/common/outer.wgsl: #include "nowhere.wgsl": cannot read kernels/common/nowhere.wgsl',
  );
  assert(!e.message.includes("\n"));
  assertThrows(
    () => expandIncludes("#include <x.wgsl>", "k.wgsl", read),
    "kernels/k.wgsl: malformed",
  );
  assertThrows(
    () => expandIncludes('#include "gone.wgsl"', "k.wgsl"),
    'kernels/k.wgsl: #include "gone.wgsl": cannot read kernels/common/gone.wgsl',
  );
});

Deno.test("wgsl include: snippets use the includer's defines; every kernel file expands fully", () => {
  const { read } = snippets({ "common/t.wgsl": "#if WIDE\nalias X = vec4<${T}>;\n#endif" });
  const src = expandIncludes('#include "t.wgsl"\nfn main() {}', "k.wgsl", read);
  assertEquals(specialize(src, { WIDE: true, T: "f32" }), "alias X = vec4<f32>;\nfn main() {}");
  assertEquals(specialize(src, { WIDE: false }), "fn main() {}");
  // The real kernels, read as the program (and the compiled binary) reads them.
  const dir = new URL("../kernels/", import.meta.url);
  const files = [...Deno.readDirSync(dir)].filter((e) => e.isFile && e.name.endsWith(".wgsl"));
  assert(files.length > 0);
  for (const { name } of files) {
    const text = kernelSource(name);
    assert(!/^\s*#include/m.test(text), `${name} still has an #include`);
  }
  assert(kernelSource("groupnorm.wgsl").includes("fn wg_sum("));
  assert(kernelSource("layernorm.wgsl").includes("fn grid1d_index("));
});

Deno.test("wgsl bindings: uniforms at 0, storage read-only flags after, gaps rejected", () => {
  const head = "@group(0) @binding(0) var<uniform> p: P;\n";
  assertEquals(
    parseBindings(
      "k",
      head + "@group(0) @binding(1) var<storage, read> a: array<f32>;\n" +
        "@group(0) @binding(2) var<storage, read_write> y: array<f32>;",
    ),
    [true, false],
  );
  assertThrows(
    () => parseBindings("k", "@group(0) @binding(0) var<storage, read> a: array<f32>;"),
    "binding 0 must be the var<uniform>",
  );
  assertThrows(
    () => parseBindings("k", head + "@group(0) @binding(2) var<storage, read> a: array<f32>;"),
    "without gaps",
  );
});
