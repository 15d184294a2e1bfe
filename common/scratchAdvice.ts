/**
 * When training from scratch is unlikely to work: a ViT has none of a CNN's built-in assumptions
 * about images and learns them from data, so on a few hundred images it stays far below what a
 * pretrained model reaches after fine-tuning (README, "Training from scratch": ViT-Tiny on 320 and 960
 * Fashion-MNIST images, torchvision's VisionTransformer as well as ours). Pure: the CLI's start log
 * and the Fine-tune form both show it.
 */

/** Fewer training images than this get the advice. */
export const SCRATCH_FEW_IMAGES = 2000;

export function scratchAdvice(model: string, trainImages: number): string | undefined {
  if (!model.startsWith('scratch:') || trainImages >= SCRATCH_FEW_IMAGES) return undefined;
  return (
    `${model} from scratch on ${trainImages} training image${trainImages === 1 ? '' : 's'} is unlikely to work well: ` +
    `a ViT learns little from a few hundred images without pretraining. Fine-tuning a pretrained model (head or last-k mode) needs far fewer.`
  );
}
