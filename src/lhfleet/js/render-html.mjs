// Renders a Lighthouse HTML report from a JSON result read on stdin.
// Usage: node render-html.mjs /path/to/lighthouse/report/generator/report-generator.js
import {pathToFileURL} from 'node:url';

const generatorPath = process.argv[2];
const {ReportGenerator} = await import(pathToFileURL(generatorPath).href);

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const lhr = JSON.parse(Buffer.concat(chunks).toString('utf8'));
process.stdout.write(ReportGenerator.generateReportHtml(lhr));
