"""The configuration as data: one module per section of the YAML file, one strict base.

Runtime modules take these objects; nothing here imports runtime code, so reading and
checking a configuration needs no video, database, model or web library.
"""

from gridwatch.settings.loader import DEFAULT_CONFIG, ConfigError, load_config, parse_config
from gridwatch.settings.root import GridwatchSettings

__all__ = ["DEFAULT_CONFIG", "ConfigError", "GridwatchSettings", "load_config", "parse_config"]
