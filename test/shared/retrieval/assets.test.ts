import { describe, expect, test } from "bun:test";
import { assetPath, bucketAssets, fetchAssets, memoryAssets, workersAssets, type AssetSource } from "../../../shared/retrieval/assets.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));

/** A fake origin holding `files`; answers 500 for paths under "broken/". Records requested URLs. */
function fakeOrigin(files: Record<string, string>) {
  const seen: string[] = [];
  const handle = async (input: Request | string | URL): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : input);
    seen.push(url.href);
    const path = decodeURIComponent(url.pathname);
    if (path.includes("/broken/")) return new Response("boom", { status: 500, statusText: "Internal" });
    const hit = Object.entries(files).find(([k]) => path.endsWith(`/${k}`));
    return hit ? new Response(hit[1]) : new Response("nope", { status: 404 });
  };
  return { seen, handle };
}

const HOSTILE_PATHS = ["", "/etc/passwd", "../secret", "a/../../b", "a//b", "a/./b", "a\\b", "a\0b", "."];

describe("assetPath", () => {
  test("accepts plain relative paths and drops a leading ./", () => {
    expect(assetPath("model.json")).toBe("model.json");
    expect(assetPath("./gallery/f30k_ims.npy")).toBe("gallery/f30k_ims.npy");
  });
  test.each(HOSTILE_PATHS)("rejects %p", (p) => {
    expect(() => assetPath(p)).toThrow("not a plain relative path");
  });
});

function sharedContract(name: string, make: () => AssetSource) {
  describe(`${name} (contract)`, () => {
    test("reads a file, nested paths too", async () => {
      expect(text(await make().get("model.json"))).toBe('{"a":1}');
      expect(text(await make().get("gallery/caps.txt"))).toBe("a cat");
    });
    test("missing file is null", async () => {
      expect(await make().get("absent.bin")).toBeNull();
    });
    test("hostile paths throw before any read", async () => {
      for (const p of HOSTILE_PATHS) await expect(make().get(p)).rejects.toThrow("not a plain relative path");
    });
  });
}

const FILES = { "model.json": '{"a":1}', "gallery/caps.txt": "a cat" };

sharedContract("memoryAssets", () => memoryAssets(Object.fromEntries(Object.entries(FILES).map(([k, v]) => [k, bytes(v)]))));
sharedContract("fetchAssets", () => fetchAssets("https://models.test/m1/", fakeOrigin(FILES).handle as typeof fetch));
sharedContract("workersAssets", () => workersAssets({ fetch: fakeOrigin(FILES).handle }));
sharedContract("bucketAssets", () =>
  bucketAssets({
    get: async (key) => {
      const v = (FILES as Record<string, string>)[key];
      return v === undefined ? null : { arrayBuffer: async () => bytes(v).buffer as ArrayBuffer };
    },
  }),
);

describe("fetchAssets", () => {
  test("resolves under the base URL and percent-encodes segments", async () => {
    const origin = fakeOrigin({ "a b/c#d.txt": "x" });
    const assets = fetchAssets("https://models.test/m1/", origin.handle as typeof fetch);
    expect(text(await assets.get("a b/c#d.txt"))).toBe("x");
    expect(origin.seen).toEqual(["https://models.test/m1/a%20b/c%23d.txt"]);
  });
  test("a base without trailing slash is refused", () => {
    expect(() => fetchAssets("https://models.test/m1")).toThrow('must end with "/"');
  });
  test("HTTP errors other than 404 throw with the status", async () => {
    const assets = fetchAssets("https://models.test/", fakeOrigin({}).handle as typeof fetch);
    await expect(assets.get("broken/x.bin")).rejects.toThrow("HTTP 500");
  });
});

describe("workersAssets and bucketAssets prefixes", () => {
  test("workersAssets puts the prefix before the path", async () => {
    const origin = fakeOrigin({ "model.json": "{}" });
    await workersAssets({ fetch: origin.handle }, "sgraf/").get("model.json");
    expect(new URL(origin.seen[0]!).pathname).toBe("/sgraf/model.json");
  });
  test("bucketAssets reads key prefix + path", async () => {
    const keys: string[] = [];
    await bucketAssets({ get: async (k) => (keys.push(k), null) }, "runs/7/").get("model.json");
    expect(keys).toEqual(["runs/7/model.json"]);
  });
});
