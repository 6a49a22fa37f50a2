// RMSNorm (torch.nn.RMSNorm; Gemma's with weightOffset 1) around the Embind `RMSNorm`:
// x / sqrt(mean(x^2) + eps) * (weightOffset + weight) over the trailing dims given by
// normalizedShape. Everything but its options is what LayerNorm does (layernorm.js).
import { defineNormClass, normOpsOf, readNormOptions } from './layernorm.js';
import { withRmsNormConfig } from './layer-config.js';
import { finiteFloat32 } from './modern.js';

/** torch.nn.RMSNorm's eps when none is given: float32's machine epsilon (torch.finfo(torch.float32).eps). */
const FLOAT32_EPSILON = 2 ** -23;

/** Checks RMSNorm's options; returns the frozen configuration. */
export function rmsNormConfig(options) {
  const { o, shape, eps, elementwiseAffine } = readNormOptions('RMSNorm', options, ['weightOffset'], FLOAT32_EPSILON);
  const weightOffset = o.weightOffset === undefined ? 0 : o.weightOffset;
  finiteFloat32('weightOffset', weightOffset);
  if (weightOffset !== 0 && !elementwiseAffine)
    throw new TypeError(`weightOffset (${weightOffset}) scales the weight, which a layer with elementwiseAffine: false does not have`);
  return Object.freeze({ normalizedShape: Object.freeze(shape), eps, elementwiseAffine, weightOffset });
}

const RMS_NORM = Object.freeze({
  name: 'RMSNorm',
  hasBias: false,
  config: rmsNormConfig,
  mixin: withRmsNormConfig,
  make: (rt, cfg, width) => rt.withRecord('RmsNormConfig', { width, eps: cfg.eps, weight_offset: cfg.weightOffset },
    (p) => new rt.mod.RMSNorm(p), 'new RMSNorm'),
});

/** The public class over a backend. ctx: { backend, Native, live } (api.js). */
export const defineRMSNorm = (ctx) => defineNormClass(ctx, RMS_NORM);

/** What runs where the runtime is. ctx: { rt, get(id, kind) } (ops.js). */
export const rmsNormOps = (ctx) => normOpsOf(ctx, RMS_NORM);
