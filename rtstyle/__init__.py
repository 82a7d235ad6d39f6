"""rtstyle: real-time neural style transfer and super-resolution (Johnson et al. 2016)."""
__version__ = "0.1.0"
