import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Components take their colours from the theme's CSS variables (styles/base.css, the one palette file,
 * with a light and a dark scheme), so that dark mode reaches every screen. A literal colour in a
 * component's <style> block or static style attribute stays light in dark mode.
 */
const RENDERER = path.join(import.meta.dirname, '../../src/renderer/src');
const PALETTE = path.join(RENDERER, 'styles/base.css');
/** The shared style sheets beside the palette (styles/components.css): held to the components' rules. */
const SHARED_SHEETS = readdirSync(path.join(RENDERER, 'styles'))
  .filter((name) => name.endsWith('.css') && name !== 'base.css')
  .map((name) => path.join(RENDERER, 'styles', name));

const NAMED_COLOURS = new Set(
  (
    'aliceblue antiquewhite aqua aquamarine azure beige bisque black blanchedalmond blue blueviolet brown ' +
    'burlywood cadetblue chartreuse chocolate coral cornflowerblue cornsilk crimson cyan darkblue darkcyan ' +
    'darkgoldenrod darkgray darkgreen darkgrey darkkhaki darkmagenta darkolivegreen darkorange darkorchid ' +
    'darkred darksalmon darkseagreen darkslateblue darkslategray darkslategrey darkturquoise darkviolet ' +
    'deeppink deepskyblue dimgray dimgrey dodgerblue firebrick floralwhite forestgreen fuchsia gainsboro ' +
    'ghostwhite gold goldenrod gray green greenyellow grey honeydew hotpink indianred indigo ivory khaki ' +
    'lavender lavenderblush lawngreen lemonchiffon lightblue lightcoral lightcyan lightgoldenrodyellow ' +
    'lightgray lightgreen lightgrey lightpink lightsalmon lightseagreen lightskyblue lightslategray ' +
    'lightslategrey lightsteelblue lightyellow lime limegreen linen magenta maroon mediumaquamarine ' +
    'mediumblue mediumorchid mediumpurple mediumseagreen mediumslateblue mediumspringgreen mediumturquoise ' +
    'mediumvioletred midnightblue mintcream mistyrose moccasin navajowhite navy oldlace olive olivedrab ' +
    'orange orangered orchid palegoldenrod palegreen paleturquoise palevioletred papayawhip peachpuff peru ' +
    'pink plum powderblue purple rebeccapurple red rosybrown royalblue saddlebrown salmon sandybrown ' +
    'seagreen seashell sienna silver skyblue slateblue slategray slategrey snow springgreen steelblue tan ' +
    'teal thistle tomato turquoise violet wheat white whitesmoke yellow yellowgreen'
  ).split(' '),
);
const COLOUR_FUNCTION = /\b(rgba?|hsla?|hwb|lab|lch|oklab|oklch|color)\(/i;
const HEX = /#[0-9a-f]{3,8}\b/i;

/** The colour literals in one declaration's value: hex, colour functions and named colours. */
function colourLiterals(value: string): string[] {
  const found: string[] = [];
  const hex = value.match(new RegExp(HEX.source, 'gi'));
  if (hex) found.push(...hex);
  const fn = value.match(new RegExp(COLOUR_FUNCTION.source, 'gi'));
  if (fn) found.push(...fn);
  // Names only outside var(...) references and quoted strings, so that --white-ish or content: 'black' pass.
  const bare = value.replace(/var\([^)]*\)/g, '').replace(/(['"]).*?\1/g, '');
  for (const word of bare.toLowerCase().match(/(?<![-\w])[a-z]+(?![-\w(])/g) ?? []) {
    if (NAMED_COLOURS.has(word)) found.push(word);
  }
  return found;
}

/** `property: value` pairs of a CSS text (comments removed; declarations are the insides of innermost braces). */
function declarations(css: string): { property: string; value: string }[] {
  const clean = css.replace(/\/\*[\s\S]*?\*\//g, '');
  const blocks = [...clean.matchAll(/\{([^{}]*)\}/g)].map((match) => match[1] ?? '');
  return blocks.flatMap((block) => inlineDeclarations(block));
}

function inlineDeclarations(text: string): { property: string; value: string }[] {
  return text.split(';').flatMap((part) => {
    const colon = part.indexOf(':');
    if (colon < 0) return [];
    return [{ property: part.slice(0, colon).trim(), value: part.slice(colon + 1).trim() }];
  });
}

/** Every literal colour in a .vue file's <style> blocks and static style="" attributes, as 'property: value'. */
function offendersIn(source: string): string[] {
  const styles = [...source.matchAll(/<style\b[^>]*>([\s\S]*?)<\/style>/g)].map((match) => match[1] ?? '');
  const inline = [...source.matchAll(/(?<![:\w-])style="([^"]*)"/g)].map((match) => match[1] ?? '');
  const all = [...styles.flatMap(declarations), ...inline.flatMap(inlineDeclarations)];
  return all
    .filter(({ property, value }) => !property.startsWith('--') && colourLiterals(value).length > 0)
    .map(({ property, value }) => `${property}: ${value}`);
}

function vueFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return vueFiles(full);
    return entry.name.endsWith('.vue') ? [full] : [];
  });
}

function definedVariables(css: string): Set<string> {
  return new Set([...css.matchAll(/(--[\w-]+)\s*:/g)].map((match) => match[1] ?? ''));
}

describe('theme colours', () => {
  it('finds each kind of literal colour, and leaves variables, keywords and look-alike words alone', () => {
    const source = `<template><div style="color: #abc; margin: 0"></div><p :style="x"></p></template>
<style scoped>
/* color: red in a comment is fine */
a { color: #1d2633; background: rgba(0, 0, 0, 0.3); }
@media (prefers-color-scheme: dark) { b { border: 1px solid white; } }
c { box-shadow: 0 1px 2px hsl(0 0% 0%); white-space: nowrap; color: var(--text); background: transparent; }
d { border-color: currentColor; content: 'black box'; --local: #fff; outline: 1px solid var(--white-ish); }
</style>`;
    expect(offendersIn(source)).toEqual([
      'color: #1d2633',
      'background: rgba(0, 0, 0, 0.3)',
      'border: 1px solid white',
      'box-shadow: 0 1px 2px hsl(0 0% 0%)',
      'color: #abc',
    ]);
  });

  it('no component or view hard-codes a colour outside the palette file (styles/base.css)', () => {
    const files = vueFiles(RENDERER);
    expect(files.length).toBeGreaterThan(40);
    const offenders = files.flatMap((file) =>
      offendersIn(readFileSync(file, 'utf8')).map((found) => `${path.relative(RENDERER, file)}: ${found}`),
    );
    expect(offenders, 'use a variable of styles/base.css (add one there, with its dark value)').toEqual([]);
  });

  it('the shared style sheets beside the palette hard-code no colour either', () => {
    expect(SHARED_SHEETS.map((file) => path.basename(file))).toContain('components.css');
    const offenders = SHARED_SHEETS.flatMap((file) =>
      declarations(readFileSync(file, 'utf8'))
        .filter(({ property, value }) => !property.startsWith('--') && colourLiterals(value).length > 0)
        .map(({ property, value }) => `${path.relative(RENDERER, file)}: ${property}: ${value}`),
    );
    expect(offenders, 'use a variable of styles/base.css (add one there, with its dark value)').toEqual([]);
  });

  it('the palette file keeps its literal colours in the variable definitions of the two schemes', () => {
    const outside = declarations(readFileSync(PALETTE, 'utf8'))
      .filter(({ property, value }) => !property.startsWith('--') && colourLiterals(value).length > 0)
      .map(({ property, value }) => `${property}: ${value}`);
    expect(outside).toEqual([]);
  });

  it('every var(--name) a component or shared sheet uses is defined in the palette file or the file itself', () => {
    const palette = definedVariables(readFileSync(PALETTE, 'utf8'));
    const missing = [...vueFiles(RENDERER), ...SHARED_SHEETS].flatMap((file) => {
      const source = readFileSync(file, 'utf8');
      const local = definedVariables(source);
      const used = [...source.matchAll(/var\((--[\w-]+)/g)].map((match) => match[1] ?? '');
      return [...new Set(used)]
        .filter((name) => !palette.has(name) && !local.has(name))
        .map((name) => `${path.relative(RENDERER, file)}: ${name}`);
    });
    expect(missing).toEqual([]);
  });
});
