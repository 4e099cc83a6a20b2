"""Patch datasets: small context (TFDS rules), large context, segmentation tiles, 512 resizing."""
