"""The oracle: exact (enumeration) and statistical engines that judge a decoder's law."""
