"""The parsers and the networks they are made of, one block a file.

* ``parser`` — the interface every parser offers (:class:`~.parser.Parser`) and :class:`~.parser.ParseOptions`;
* ``bodypix_parser`` — :class:`~.bodypix_parser.BodyPixParser`, the default parser for real photos and video;
* ``pose_guided`` — :class:`~.pose_guided.PoseGuidedParser`, the earlier parser for real photos;
* ``skeleton`` — the pose-guided parser's part evidence: person masks split into parts by the skeleton;
* ``holistic`` — :class:`~.holistic.HolisticParser`, the paper's network, and ``build_model``;
* ``backbones`` — dilated torchvision ResNets, MobileNetV3 and BodyPix's MobileNetV1 for the holistic network;
* ``segmenter`` — the pyramid pooling part segmenter on a backbone;
* ``detection_head`` — the built-in CenterNet person detector on the backbone's features;
* ``lattice`` — the permutohedral lattice: high-dimensional Gaussian filtering in O(N);
* ``crf`` — :class:`~.crf.InstanceCRF`, the Instance CRF on the lattice, shared by all parsers;
* ``crf_script`` — :class:`~.crf_script.ScriptableCRF`, its inference for ``torch.jit.script`` (export);
* ``instances`` — the CRF's labels at the image's size, as part and person maps and results;
* ``checkpoints`` — self-describing checkpoint files of the holistic network; the shipped synthetic model.
"""
