"""The detection core: motion, regions, model backends, tracking and event rules."""
