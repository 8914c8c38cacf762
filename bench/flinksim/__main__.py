from bench.flinksim.server import main

main()
