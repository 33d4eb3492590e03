"""The toolkit's ground floor: the vocabulary every other layer speaks (operations and
their outcomes, check results, the service's limits and bounds over them). It imports
nothing of the toolkit but `chaos.errors`."""
