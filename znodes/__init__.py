"""The pure core of consistent-core: paths, Stat, the data tree, watches, ACLs, errors and codecs.

Nothing in this package touches trio, sockets, files, clocks or randomness: every input
(time, session ids, zxids) arrives inside the records it is given.
"""
