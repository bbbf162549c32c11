// Greedy-decode N tokens of a prompt with llama.cpp (node-llama-cpp's prebuilt CPU binary), for the GGUF
// export checks (tests/trainer/test_gguf_export.py, bench/gguf_llamacpp.py). Run it from the folder where
// node-llama-cpp is installed: cd DIR && node bench/llamacpp_greedy.mjs MODEL.gguf PROMPT_FILE N
// -> one JSON line {"prompt_tokens": [...], "tokens": [...], "text": "..."}
import fs from "node:fs";
import path from "node:path";
import {pathToFileURL} from "node:url";
// node-llama-cpp lives outside the repository, in the working directory's node_modules.
const entry = path.join(process.cwd(), "node_modules", "node-llama-cpp", "dist", "index.js");
const {getLlama} = await import(pathToFileURL(entry).href);
const [model_path, prompt_file, n] = process.argv.slice(2);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath: model_path});
const context = await model.createContext({contextSize: 512});
const sequence = context.getSequence();
const prompt = model.tokenize(fs.readFileSync(prompt_file, "utf8"), true);
const tokens = [];
for await (const token of sequence.evaluate(prompt, {temperature: 0})) {
    tokens.push(token);
    if (tokens.length >= Number(n) || model.isEogToken(token)) break;
}
console.log(JSON.stringify({prompt_tokens: Array.from(prompt), tokens: tokens, text: model.detokenize(tokens)}));
process.exit(0);
