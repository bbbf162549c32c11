"""The evaluation wing: measuring a trained checkpoint, for `recipe-train eval` and `compare`.

`checkpoint_eval` scores a checkpoint (loss and perplexity over real tokens, generated recipes
against their references); `bootstrap` turns two checkpoints' paired scores into an interval;
`comparison` puts two evaluations side by side and writes the reports `compare` shows.

May import: the shared top-level modules (generation lives in `inference`, which the training
loop's validation samples use too), `data`, and from `training` the forward pass and the
perplexity rule, so an eval loss is the number training reports. Never `local` or `commands`.
"""
