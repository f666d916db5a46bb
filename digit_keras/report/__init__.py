"""`digit-keras report`: an HTML report of what a model or ensemble gets right and wrong."""
