"""Models room: dark-matter spectra and profiles, astrophysical backgrounds.

Plain arrays out, units documented; nothing here knows about samplers.
"""
