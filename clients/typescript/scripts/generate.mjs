// Generates src/generated/jobs.ts from schema/*.json (written by `python -m broseph.schema`).
//
// The payload models are the one source: their JSON Schemas use the contract's snake_case names;
// this turns them into camelCase TypeScript interfaces (json-schema-to-typescript) and one
// generated map from each camelCase name back to its snake_case name, which enqueue() applies.
// Run through scripts/generate.sh (regenerates the schemas first); CI fails when the committed
// output differs from a fresh run.
//
//   node scripts/generate.mjs [--schema DIR] [--out FILE]

import { readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { compile } from 'json-schema-to-typescript';

const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    schema: { type: 'string', default: join(here, '..', 'schema') },
    out: { type: 'string', default: join(here, '..', 'src', 'generated', 'jobs.ts') },
  },
});

/** snake_case → camelCase; the only naming rule between the two faces. */
export function camel(name) {
  return name.replace(/_+([a-z0-9])/g, (_, c) => c.toUpperCase());
}

function fail(message) {
  console.error(`generate: ${message}`);
  process.exit(1);
}

function resolveRef(node, root, where) {
  if (!node.$ref) return node;
  const match = /^#\/\$defs\/(.+)$/.exec(node.$ref);
  if (!match || !root.$defs?.[match[1]]) fail(`${where}: cannot resolve $ref ${node.$ref}`);
  return root.$defs[match[1]];
}

/**
 * The camelCase → snake_case map of one object schema: `{ camel: 'snake' }`, or
 * `{ camel: ['snake', nestedMap] }` where the value is itself an object (or array of objects).
 */
function fieldMap(node, root, where) {
  node = resolveRef(node, root, where);
  for (const key of ['anyOf', 'oneOf', 'allOf']) {
    if (node[key]) {
      const maps = node[key].map((branch) => fieldMap(branch, root, where)).filter(Boolean);
      return maps.length ? Object.assign({}, ...maps) : null;
    }
  }
  if (node.items) return fieldMap(node.items, root, `${where}[]`);
  if (!node.properties) return null;
  const map = {};
  for (const [snake, child] of Object.entries(node.properties)) {
    const name = camel(snake);
    if (name in map)
      fail(`${where}: "${snake}" and "${map[name]}" are both "${name}" in camelCase`);
    const nested = fieldMap(child, root, `${where}.${snake}`);
    map[name] = nested ? [snake, nested] : snake;
  }
  return map;
}

/** The same schema with camelCase property names; property titles dropped (they would become
 * type aliases such as `GroupId`). */
function camelize(node, isProperty = false) {
  if (Array.isArray(node)) return node.map((n) => camelize(n, isProperty));
  if (node === null || typeof node !== 'object') return node;
  const out = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === '$schema' || (key === 'title' && isProperty)) continue;
    if (key === 'properties') {
      out.properties = Object.fromEntries(
        Object.entries(value).map(([k, v]) => [camel(k), camelize(v, true)]),
      );
    } else if (key === 'required') {
      out.required = value.map(camel);
    } else if (key === '$defs') {
      out.$defs = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, camelize(v)]));
    } else {
      out[key] = camelize(value, isProperty && key !== 'default');
    }
  }
  return out;
}

function loadSchemas(dir) {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort();
  if (!files.length) fail(`no schemas in ${dir}: run python -m broseph.schema --out ${dir}`);
  return files.map((file) => {
    const schema = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    const name = file.replace(/\.json$/, '');
    if (schema.title !== name) fail(`${file}: title "${schema.title}" is not "${name}"`);
    return { name, schema };
  });
}

/** One schema holding every job type's params (as `<Name>Params`) and their shared $defs. */
function combined(jobs) {
  const defs = {};
  for (const { name, schema } of jobs) {
    const { $defs = {}, ...params } = camelize(schema);
    for (const [defName, def] of Object.entries($defs)) {
      if (defs[defName] && JSON.stringify(defs[defName]) !== JSON.stringify(def)) {
        fail(`two different schemas are both called ${defName}: rename one model`);
      }
      defs[defName] = def;
    }
    const paramsName = `${name}Params`;
    if (defs[paramsName]) fail(`a model is called ${paramsName}, which names ${name}'s params`);
    defs[paramsName] = {
      ...params,
      title: paramsName,
      description: params.description ?? `The params of a ${name} job.`,
    };
  }
  return {
    title: 'JobParams',
    description: 'The params of each job type, by job type name.',
    type: 'object',
    additionalProperties: false,
    properties: Object.fromEntries(
      jobs.map(({ name }) => [name, { $ref: `#/$defs/${name}Params` }]),
    ),
    required: jobs.map(({ name }) => name),
    $defs: defs,
  };
}

const jobs = loadSchemas(resolve(args.schema));
const types = await compile(combined(jobs), 'JobParams', {
  bannerComment: '',
  additionalProperties: false,
  strictIndexSignatures: true,
  unreachableDefinitions: false,
  style: { singleQuote: true, printWidth: 100 },
});
const names = jobs.map(({ name }) => name);
const maps = Object.fromEntries(
  jobs.map(({ name, schema }) => [name, fieldMap(schema, schema, name)]),
);

const output = `// GENERATED by scripts/generate.mjs from schema/*.json (python -m broseph.schema, i.e. the
// payload models in broseph/jobs/). Do not edit: run \`npm run generate\`.

${types.trim()}

/** Every job type, as \`broseph.enqueue\` knows it. */
export const JOB_TYPES = ${JSON.stringify(names)} as const;

export type JobType = (typeof JOB_TYPES)[number];

/** camelCase name → the contract's snake_case name; \`[name, nested]\` for an object field. */
export type FieldMap = { readonly [camel: string]: string | readonly [string, FieldMap] };

/** The field names of each job type's params, from camelCase to the contract's snake_case. */
export const FIELD_NAMES: { readonly [K in JobType]: FieldMap } = ${JSON.stringify(maps, null, 2)};
`;

mkdirSync(dirname(resolve(args.out)), { recursive: true });
writeFileSync(resolve(args.out), output);
console.log(`wrote ${args.out}`);
