/**
 * The choices the worker, the CLI, the extension and the webviews all offer, once. package.json's
 * settings repeat some as enums (VS Code reads them from there): test/unit/packageLists.test.ts
 * checks those against these lists.
 */

/** Where a model runs; `auto` lets the worker choose (README, "GPU"). */
export const PROVIDER_PREFERENCES = ['auto', 'webgpu', 'cuda', 'cpu'] as const;
export type ProviderPreference = (typeof PROVIDER_PREFERENCES)[number];
/** A provider a model actually runs on. */
export type Provider = Exclude<ProviderPreference, 'auto'>;

/** How the heads of one layer are fused into one attention map. */
export const HEAD_FUSIONS = ['mean', 'max', 'min'] as const;
export type HeadFusion = (typeof HEAD_FUSIONS)[number];

/** Overlay colormaps (the lookup tables are common/colormaps.ts). */
export const COLORMAPS = ['turbo', 'viridis', 'inferno', 'magma', 'plasma', 'gray'] as const;
export type ColormapName = (typeof COLORMAPS)[number];

/** Weight precision: fp32, fp16 (for GPUs) or q8 (int8 weights, dynamically quantized activations). */
export const DTYPES = ['fp32', 'fp16', 'q8'] as const;
export type Dtype = (typeof DTYPES)[number];

/** rollout (default), relevance (class-specific, Chefer et al. 2021), attention (one layer, raw). */
export const EXPLAIN_METHODS = ['rollout', 'relevance', 'attention'] as const;
export type ExplainMethod = (typeof EXPLAIN_METHODS)[number];
