"""Benchmarks of vigil, run with `vigil bench transport|pipeline|models|trackers|classify`.

Every benchmark prints ratios measured in one run on the same input (this vs. its baseline),
never numbers remembered from another machine. One module per benchmark; the engine
internals they touch (links, source readers, stage construction, the runner) are reached
through `benchmarks.engine` only, so a rename in the engine changes one file here.
Library packages (pipeline, stages, models) hold no benchmark code.
"""
