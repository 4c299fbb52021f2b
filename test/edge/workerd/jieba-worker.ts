/**
 * Test double Worker for Jieba in workerd: edge/worker-jieba.ts's wiring (createWorker configures
 * the imported, precompiled jieba module) and a route that segments the texts it is sent, with the
 * WebAssembly memory the segmenter then holds.
 */
import "../../../edge/worker-jieba.ts";
import { jiebaMemoryBytes, loadJieba } from "../../../shared/text/jieba.ts";

export default {
  async fetch(request: Request): Promise<Response> {
    const before = jiebaMemoryBytes();
    const { texts } = (await request.json()) as { texts: string[] };
    const jieba = await loadJieba();
    const tokens = texts.map((t) => jieba.cut(t));
    return Response.json({ tokens, memoryBefore: before, memoryAfter: jiebaMemoryBytes() });
  },
};
