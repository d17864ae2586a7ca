"""jacobi-oracle: a verified reference and fast implementation of parallel decoding for AR
image generators, with an oracle that says whether a decoder is lossless."""

__version__ = "0.1.0"
