"""The kopf operator that turns RecipeTrainingJobs into restartable DeepSpeed training gangs.

Layering: `kube` is the only module that talks to the Kubernetes API; `builders`, `phases`,
`failures` and `progress` are pure functions; `handlers` are thin kopf handlers gluing them.
"""
