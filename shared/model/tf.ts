/**
 * tfjs-core with the chained tensor methods (`x.reshape(…)`) and every gradient registered:
 * model code imports tf from here so that it never depends on import order elsewhere.
 */
import "@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops";
import "@tensorflow/tfjs-core/dist/register_all_gradients";

export * from "@tensorflow/tfjs-core";
