"""The networks, one block a file.

* ``parser.py`` — the model interface (:class:`~.parser.Parser`: images → results) and the
  inference options (:class:`~.parser.ParseOptions`).
* ``holistic.py`` — the paper's network: segmenter + built-in detector + Instance CRF,
  with its pre- and post-processing; ``build_model``.
* ``backbones.py``, ``segmenter.py`` — dilated ResNets / MobileNetV3 and the pyramid pooling
  part segmenter; ``detection_head.py`` — the CenterNet person detector on the backbone.
* ``lattice.py`` — the permutohedral lattice; ``crf.py`` — the Instance CRF on it.
* ``instances.py`` — part and person maps from the CRF labelling, read out as results.
* ``checkpoints.py`` — self-describing checkpoint files and the shipped default model.
"""
