"""The commands' work as library calls: many images into result files
(:func:`~.images.parse_images`), a video into tracked outputs (:func:`~.video.parse_video`)."""
