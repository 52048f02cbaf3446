/** `weights.lock`: the shipped lock's contents, loading precedence, and validation messages. */

import { assert, assertEquals, assertRejects, assertThrows } from "../src/std/assert.ts";
import { join } from "../src/std/path.ts";
import { SD15_UNET } from "../src/models/config.ts";
import { newSha256 } from "../src/weights/sha256.ts";
import {
  contentBytes,
  fileUrl,
  loadLock,
  type LockedFile,
  lockedModel,
  parseLock,
  variantFilter,
} from "../src/weights/lock.ts";

const SD15_BASE =
  "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/resolve/451f4fe16113bff5a5d2269ed5ad43b0592e9a14/";

const paths = (files: LockedFile[]) => files.map((f) => f.path).sort();

Deno.test("the shipped lock pins SD 1.5 and SD 1.4 as the issue lists them", async () => {
  const lock = await loadLock();
  assertEquals(lock.default, "sd15");
  assertEquals(Object.keys(lock.models).sort(), ["sd14", "sd15", "sd15-inpaint"]);
  const sd15 = lockedModel(lock);
  assertEquals(sd15.revision, "451f4fe16113bff5a5d2269ed5ad43b0592e9a14");
  const unet = sd15.files.find((f) => f.path === "unet/diffusion_pytorch_model.fp16.safetensors")!;
  assertEquals(unet.bytes, 1719125304);
  assertEquals(fileUrl(sd15, unet), SD15_BASE + "unet/diffusion_pytorch_model.fp16.safetensors");

  const configs = [
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "tokenizer/merges.txt",
    "tokenizer/vocab.json",
    "unet/config.json",
    "vae/config.json",
  ];
  assertEquals(
    paths(sd15.files.filter(variantFilter("f16"))),
    [
      ...configs,
      "text_encoder/model.fp16.safetensors",
      "unet/diffusion_pytorch_model.fp16.safetensors",
      "vae/diffusion_pytorch_model.fp16.safetensors",
    ].sort(),
  );
  assertEquals(
    paths(sd15.files.filter(variantFilter("f32"))),
    [
      ...configs,
      "text_encoder/model.safetensors",
      "unet/diffusion_pytorch_model.safetensors",
      "vae/diffusion_pytorch_model.safetensors",
    ].sort(),
  );
  const single = sd15.files.filter(variantFilter("single"));
  assertEquals(paths(single), [...configs, "v1-5-pruned-emaonly.safetensors"].sort());
  const ckpt = single.find((f) => f.path === "v1-5-pruned-emaonly.safetensors")!;
  assertEquals(
    [ckpt.bytes, ckpt.sha256],
    [4265146304, "6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa"],
  );

  const sd14 = lockedModel(lock, "sd14");
  const unet14 = sd14.files.find((f) =>
    f.path === "unet/diffusion_pytorch_model.fp16.safetensors"
  )!;
  assertEquals(unet14.sha256, "a35404d03ec8f977715a4d2a080ddf72e2144f2ee49bb1ee213258bc64f9cc87");
  assert(
    fileUrl(sd14, unet14).startsWith(
      "https://huggingface.co/CompVis/stable-diffusion-v1-4/resolve/133a221b8aa7292a167afc5127cb63fb5005638b/",
    ),
  );
  // Text encoder, VAE and tokenizer: the very same files as SD 1.5's.
  for (const f of sd14.files) {
    if (f.path.startsWith("unet/")) continue;
    const twin = sd15.files.find((g) => g.path === f.path)!;
    assertEquals([f.bytes, f.sha256], [twin.bytes, twin.sha256], f.path);
  }
  // SD 1.4's configs come from SD 1.5's revision (their own URL), as the model's note says.
  for (const f of sd14.files.filter((f) => f.path.endsWith(".json") && !f.path.startsWith("tok"))) {
    assertEquals(fileUrl(sd14, f), SD15_BASE + f.path);
  }
  assert(sd14.note?.includes("SD 1.5"));
  // --precision f32 on SD 1.4 still gets a UNet (the f16 one).
  assert(sd14.files.filter(variantFilter("f32")).some((f) => f.path.startsWith("unet/")));
});

Deno.test("the shipped lock pins SD 1.5 inpainting: its f16 UNet, SD 1.5's other files, an inline 9-channel UNet config", async () => {
  const lock = await loadLock();
  const sd15 = lockedModel(lock, "sd15");
  const inpaint = lockedModel(lock, "sd15-inpaint");
  const rev = "8a4288a76071f7280aedbdb3253bdb9e9d5d84bb";
  assertEquals(inpaint.revision, rev);
  const unet = inpaint.files.find((f) =>
    f.path === "unet/diffusion_pytorch_model.fp16.safetensors"
  )!;
  assertEquals(
    [unet.bytes, unet.sha256],
    [1719154104, "24b788b4a777748377cc20364eea4ae113c8c42f4468c16bc8c02fdae5492af9"],
  );
  assertEquals(
    fileUrl(inpaint, unet),
    `https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-inpainting/resolve/${rev}/` +
      "unet/diffusion_pytorch_model.fp16.safetensors",
  );
  // Only f16 weights: --precision f32 fetches the same files (upcast at load), nothing else.
  const expected = [
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.fp16.safetensors",
    "tokenizer/merges.txt",
    "tokenizer/vocab.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.fp16.safetensors",
  ];
  assertEquals(paths(inpaint.files.filter(variantFilter("f16"))), expected);
  assertEquals(paths(inpaint.files.filter(variantFilter("f32"))), expected);
  // Everything but the UNet and its config is SD 1.5's pinned file, from SD 1.5's revision.
  for (const f of inpaint.files.filter((f) => !f.path.startsWith("unet/"))) {
    const twin = sd15.files.find((g) => g.path === f.path)!;
    assertEquals([f.bytes, f.sha256], [twin.bytes, twin.sha256], f.path);
    assertEquals(fileUrl(inpaint, f), SD15_BASE + f.path, f.path);
  }
  // unet/config.json travels inline: SD 1.5's pinned file byte for byte but for in_channels 9.
  const config = inpaint.files.find((f) => f.path === "unet/config.json")!;
  assert(config.content !== undefined && config.url === undefined);
  const asSd15 = config.content.replace('"in_channels": 9,', '"in_channels": 4,');
  assertEquals(asSd15.length, config.content.length);
  const sd15Config = sd15.files.find((f) => f.path === "unet/config.json")!;
  assertEquals(newSha256().update(contentBytes(asSd15)).digest("hex"), sd15Config.sha256);
  const values = JSON.parse(config.content) as Record<string, unknown>;
  assertEquals(values.in_channels, 9);
  for (const [k, v] of Object.entries(SD15_UNET)) {
    if (k !== "in_channels" && k in values) assertEquals(values[k], v, k);
  }
  assert(inpaint.note?.includes("unet/diffusion_pytorch_model.fp16.safetensors"));
});

Deno.test("loadLock: --lock FILE, then $SD_LOCK, then the shipped lock", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sd-lock-" });
  const saved = Deno.env.get("SD_LOCK");
  const lockText = (name: string) =>
    JSON.stringify({
      version: 1,
      models: {
        [name]: {
          revision: "abc",
          base: "http://127.0.0.1:1/x/",
          files: [{ path: "a", bytes: 1, sha256: "0".repeat(64) }],
        },
      },
    });
  try {
    await Deno.writeTextFile(join(dir, "a.lock"), lockText("from-flag"));
    await Deno.writeTextFile(join(dir, "b.lock"), lockText("from-env"));
    Deno.env.set("SD_LOCK", join(dir, "b.lock"));
    assertEquals((await loadLock()).default, "from-env");
    assertEquals((await loadLock(join(dir, "a.lock"))).default, "from-flag");
    Deno.env.delete("SD_LOCK");
    assertEquals((await loadLock()).default, "sd15");
    await assertRejects(() => loadLock(join(dir, "missing.lock")), "missing.lock (--lock)");
  } finally {
    if (saved === undefined) Deno.env.delete("SD_LOCK");
    else Deno.env.set("SD_LOCK", saved);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseLock names the source and the bad field", () => {
  const good = {
    version: 1,
    default: "m",
    models: {
      m: {
        revision: "0123abcd",
        base: "https://example.org/r/",
        files: [
          { path: "unet/w.safetensors", bytes: 10, sha256: "a".repeat(64), variants: ["f16"] },
          { path: "c.json", bytes: 2, sha256: "b".repeat(64), url: "https://example.org/o/c.json" },
        ],
      },
    },
  };
  const lock = parseLock(JSON.stringify(good), "t.lock");
  assertEquals(lock.source, "t.lock");
  assertEquals(
    fileUrl(lock.models.m, lock.models.m.files[0]),
    "https://example.org/r/unet/w.safetensors",
  );
  assertEquals(fileUrl(lock.models.m, lock.models.m.files[1]), "https://example.org/o/c.json");
  assertThrows(() => lockedModel(lock, "sd15"), 't.lock: no model "sd15" (it has m)');

  const bad = (edit: (j: typeof good & Record<string, unknown>) => void, msg: string) => {
    const j = structuredClone(good) as typeof good & Record<string, unknown>;
    edit(j);
    assertThrows(() => parseLock(JSON.stringify(j), "t.lock"), msg);
  };
  assertThrows(() => parseLock("{", "t.lock"), "t.lock: not valid JSON");
  bad((j) => (j.version = 2 as 1), "t.lock: version: expected 1, got 2");
  bad((j) => (j.default = "x"), "t.lock: default: expected one of the models (m)");
  bad((j) => (j.models.m.base = "https://example.org/r"), 'models.m.base: must end with "/"');
  bad((j) => (j.models.m.base = "ftp://example.org/r/"), "models.m.base: expected an absolute");
  bad(
    (j) => (j.models.m.files[0].sha256 = "A".repeat(64)),
    "models.m.files[0].sha256: expected 64",
  );
  bad((j) => (j.models.m.files[0].bytes = -1), "models.m.files[0].bytes: expected a non-negative");
  bad((j) => (j.models.m.files[1].path = "unet/w.safetensors"), "files[1].path: duplicate path");
  bad((j) => (j.models.m.files[0].path = "../w"), 'files[0].path: bad segment ".."');
  bad((j) => (j.models.m.files[0].path = "/etc/w"), "files[0].path: must be relative");
  bad((j) => (j.models.m.files[0].path = "w.part"), "collides with the cache's own files");
  bad((j) => (j.models.m.files[0].variants = []), "files[0].variants: expected a non-empty");
  bad(
    (j) => ((j.models.m.files[0] as Record<string, unknown>).shasum = "x"),
    "models.m.files[0].shasum: unknown field",
  );
  bad((j) => (j.models.m.files = []), "models.m.files: expected a non-empty array");
  bad((j) => (j.models = {} as typeof j.models), "t.lock: models: no models");
  bad((j) => {
    j.models = { "Bad Name": j.models.m } as unknown as typeof j.models;
  }, "models.Bad Name: model names are");
});

Deno.test("parseLock: a file's inline content must match its bytes and sha256, and has no url", () => {
  const text = '{\n  "in_channels": 9\n}\n';
  const sha256 = newSha256().update(contentBytes(text)).digest("hex");
  const lockWith = (file: Record<string, unknown>) =>
    JSON.stringify({
      version: 1,
      models: { m: { revision: "r1", base: "https://example.org/r/", files: [file] } },
    });
  const good = { path: "unet/config.json", bytes: text.length, sha256, content: text };
  const file = parseLock(lockWith(good), "t.lock").models.m.files[0];
  assertEquals([file.content, file.bytes, file.sha256], [text, text.length, sha256]);
  // Non-ASCII text counts its UTF-8 bytes.
  const accented = '{"note": "é"}';
  assertEquals(
    parseLock(
      lockWith({
        path: "n.json",
        bytes: 14,
        sha256: newSha256().update(contentBytes(accented)).digest("hex"),
        content: accented,
      }),
      "t.lock",
    ).models.m.files[0].bytes,
    accented.length + 1,
  );

  const refused = (edit: Record<string, unknown>, msg: string) =>
    assertThrows(() => parseLock(lockWith({ ...good, ...edit }), "t.lock"), msg);
  refused(
    { sha256: "0".repeat(64) },
    `t.lock: models.m.files[0].sha256: the content hashes to ${sha256}, not ${"0".repeat(64)}`,
  );
  refused(
    { content: text.replace("9", "4") },
    "t.lock: models.m.files[0].sha256: the content hashes to",
  );
  refused(
    { bytes: text.length + 1 },
    `t.lock: models.m.files[0].bytes: the content is ${text.length} bytes (UTF-8), not ${
      text.length + 1
    }`,
  );
  refused({ content: 42 }, "t.lock: models.m.files[0].content: expected the file's text");
  refused(
    { url: "https://example.org/o/config.json" },
    'models.m.files[0].url: a file with "content" is written from the lock, not downloaded',
  );
});
