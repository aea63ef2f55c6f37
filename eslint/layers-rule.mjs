// ESLint rule `mimir/layers`: an import that crosses the layers of docs/architecture.md is an error.
// It resolves each import (relative paths and the aliases of eslint/layers.mjs) to the folder under
// src/ it lands in, so a path's spelling cannot hide the layer it reaches.
import { builtinModules } from 'node:module';
import path from 'node:path';
import { ALIASES, BROWSER_LAYERS, LAYER_IMPORTS } from './layers.mjs';

const NODE_BUILTINS = new Set(builtinModules);

function isNodeBuiltin(specifier) {
  return specifier.startsWith('node:') || NODE_BUILTINS.has(specifier.split('/')[0]);
}

/** The layer (folder under src/) of an absolute path, or null outside src/. */
function layerOf(root, absolutePath) {
  const relative = path.relative(path.join(root, 'src'), absolutePath);
  if (relative.startsWith('..') || path.isAbsolute(relative)) return null;
  const layer = relative.split(path.sep)[0];
  return Object.hasOwn(LAYER_IMPORTS, layer) ? layer : null;
}

/** Where an import specifier points, as an absolute path; null for a package. */
function resolveSpecifier(root, fromFile, specifier) {
  if (specifier.startsWith('.')) return path.resolve(path.dirname(fromFile), specifier);
  for (const [alias, folder] of Object.entries(ALIASES)) {
    if (specifier === alias || specifier.startsWith(`${alias}/`)) {
      return path.join(root, folder, specifier.slice(alias.length));
    }
  }
  return null;
}

function allowedText(layer) {
  const allowed = LAYER_IMPORTS[layer];
  return allowed.length === 0 ? 'no other layer' : allowed.map((name) => `src/${name}`).join(', ');
}

/** @param {string} root the repository root (where src/ is) */
export function layersRule(root) {
  return {
    meta: {
      type: 'problem',
      docs: { description: 'Imports follow the layers of docs/architecture.md' },
      schema: [],
      messages: {
        layer:
          "src/{{from}} may not import src/{{to}} ('{{specifier}}'): src/{{from}} may import {{allowed}} " +
          '(docs/architecture.md, Layers). Move what both need into src/shared, or reach it through the layer that owns it.',
        builtin:
          "src/{{from}} may not import the Node module '{{specifier}}': its code also runs in the browser renderer " +
          '(docs/architecture.md, Layers). Keep Node-only code in src/engine or an outer layer.',
      },
    },
    create(context) {
      const fromLayer = layerOf(root, context.filename);
      if (fromLayer === null) return {};
      function check(node, source) {
        if (!source || source.type !== 'Literal' || typeof source.value !== 'string') return;
        const specifier = source.value;
        if (BROWSER_LAYERS.includes(fromLayer) && isNodeBuiltin(specifier)) {
          context.report({ node: source, messageId: 'builtin', data: { from: fromLayer, specifier } });
          return;
        }
        const target = resolveSpecifier(root, context.filename, specifier);
        const toLayer = target === null ? null : layerOf(root, target);
        if (toLayer === null || toLayer === fromLayer || LAYER_IMPORTS[fromLayer].includes(toLayer)) return;
        context.report({
          node: source,
          messageId: 'layer',
          data: { from: fromLayer, to: toLayer, specifier, allowed: allowedText(fromLayer) },
        });
      }
      return {
        ImportDeclaration: (node) => check(node, node.source),
        ExportNamedDeclaration: (node) => check(node, node.source),
        ExportAllDeclaration: (node) => check(node, node.source),
        ImportExpression: (node) => check(node, node.source),
      };
    },
  };
}
