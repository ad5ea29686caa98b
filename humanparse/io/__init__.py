"""Files in and out: images (reading, and the one PNG/JPEG encoder), video (PyAV decoding
and the one H.264 writer), result files, COCO RLE, MOTS text, pictures for people to look
at, and atomic writes."""
