"""The shoppers' face: the search page, photo searches and the product page."""
