/**
 * package.json repeats some of common/'s lists (VS Code reads settings' enums and menus' `when`
 * clauses from there, not from code): they must stay equal, or a setting offers a choice the
 * worker refuses, or a menu shows on a file the worker cannot read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { COLORMAPS, DTYPES, HEAD_FUSIONS, PROVIDER_PREFERENCES } from '../../common/options';
import { IMAGE_EXTENSIONS, isImagePath } from '../../common/imageFiles';

const manifest = JSON.parse(fs.readFileSync('package.json', 'utf8'));
const configuration = [manifest.contributes.configuration].flat();
const settings: Record<string, { enum?: string[] }> = Object.assign(
  {},
  ...configuration.map((c: { properties: object }) => c.properties),
);

test("the settings' enums are common/options.ts's lists", () => {
  assert.deepEqual(settings['vitLens.executionProvider'].enum, [...PROVIDER_PREFERENCES]);
  assert.deepEqual(settings['vitLens.dtype'].enum, [...DTYPES]);
  assert.deepEqual(settings['vitLens.rollout.headFusion'].enum, [...HEAD_FUSIONS]);
  assert.deepEqual(settings['vitLens.overlay.colormap'].enum, [...COLORMAPS]);
});

test("the image menus' `when` clauses match exactly common/imageFiles.ts's extensions", () => {
  const whens = new Set<string>();
  for (const entries of Object.values(manifest.contributes.menus) as { when?: string }[][]) {
    for (const e of entries)
      if (e.when?.includes('resourceExtname =~')) whens.add(/resourceExtname =~ \/(.+)\/(\w*)/.exec(e.when)![0]);
  }
  assert.ok(whens.size >= 1, 'the image menus are found');
  const probes = [...IMAGE_EXTENSIONS, 'svg', 'heic', 'txt', 'onnx', 'jpgx', 'ti', 'pn'];
  for (const when of whens) {
    const [, source, flags] = /resourceExtname =~ \/(.+)\/(\w*)/.exec(when)!;
    const re = new RegExp(source, flags);
    for (const ext of probes) {
      for (const spelled of [ext, ext.toUpperCase()])
        assert.equal(re.test(`.${spelled}`), isImagePath(`a.${spelled}`), `${when} vs .${spelled}`);
    }
  }
});
