"""The networks of Zakharov et al. 2019, one per file (embedder E, generator G, discriminator D),
their building blocks, the landmark rasterizer, the network registry and configs
(:mod:`~pipeline.models.networks`), the checkpoint format (:mod:`~pipeline.models.checkpoint`) and
G's warp input (:mod:`~pipeline.models.fusion`)."""
