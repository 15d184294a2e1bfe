/**
 * Colormaps for attention heatmaps, as 256-entry RGB lookup tables. Browser-safe (d3 only): the
 * results panel's webview bundles this same module, so the canvas it draws and the PNG the worker
 * writes ("Save Overlay", `explain --out`) use identical colours.
 */
import { rgb as parseColor } from 'd3-color';
import {
  interpolateInferno,
  interpolateMagma,
  interpolatePlasma,
  interpolateTurbo,
  interpolateViridis,
} from 'd3-scale-chromatic';
import { COLORMAPS, type ColormapName } from './options';

export type Colormap = ColormapName;

const interpolators: Record<Colormap, (t: number) => string> = {
  turbo: interpolateTurbo,
  viridis: interpolateViridis,
  inferno: interpolateInferno,
  magma: interpolateMagma,
  plasma: interpolatePlasma,
  gray: t => `rgb(${Math.round(t * 255)}, ${Math.round(t * 255)}, ${Math.round(t * 255)})`,
};

const lutCache = new Map<Colormap, Uint8Array>();

/** 256 RGB entries for a colormap, built once per colormap. */
export function colormapLut(name: Colormap): Uint8Array {
  let lut = lutCache.get(name);
  if (!lut) {
    const interpolate = interpolators[name];
    if (!interpolate) throw new Error(`unknown colormap "${name}"; choose one of ${COLORMAPS.join(', ')}`);
    lut = new Uint8Array(256 * 3);
    for (let i = 0; i < 256; i++) {
      const c = parseColor(interpolate(i / 255));
      lut[i * 3] = c.r;
      lut[i * 3 + 1] = c.g;
      lut[i * 3 + 2] = c.b;
    }
    lutCache.set(name, lut);
  }
  return lut;
}
