"""Orange Image Analytics: import, embed, explore and save images."""
