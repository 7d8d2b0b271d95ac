"""`make bench`: the product's figures, each beside the raw baseline that bounds it."""
