"""Files in and out: images (reading, and the one PNG/JPEG encoder), video (PyAV decoding
and the one H.264 writer), per-image result files (``results``), per-frame video outputs
(``sinks``), COCO RLE, MOTS text, pictures for people to look at, atomic writes (``files``)
and reading weight files safely (``weights``)."""
