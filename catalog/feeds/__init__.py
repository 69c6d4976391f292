"""Product feeds: ``formats`` reads a file into rows, ``importer`` writes them to the catalog."""
