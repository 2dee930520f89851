# bench/footprint.awk: the code a workload runs on every call, from a callgrind profile made with
# --dump-instr=yes --compress-pos=no --compress-strings=no.
#
#   awk -v calls=N -v lib=NAME -f bench/footprint.awk callgrind.out
#
# Prints "LINES PAGES LIB_LINES LIB_PAGES": the 64-byte cache lines and 4 KiB pages holding an
# instruction executed at least 0.9 * N times (once per call, give or take the warm-up), in all
# objects and in the object whose file name contains NAME. Why it matters: when the server runs
# on the client's CPU between the client's steps (or anything else does), the client's code is
# evicted from the instruction caches and TLB each time, and every line it runs is fetched again.
# Instruction counts do not show that cost; this does.
function hexval(s,    i, v) {
    v = 0
    for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
    return v
}
/^ob=/ { ob = substr($0, 4); next }
/^calls=/ { skip = 1; next }     # the next cost line is the call's inclusive cost, not code
/^0x/ {
    if (skip) { skip = 0; next }
    if ($3 + 0 >= 0.9 * calls) {
        # Without big numbers (mawk): a page is the address less its last 3 hex digits, a line
        # the page and the top 6 bits of those digits.
        h = tolower(substr($1, 3)); n = length(h)
        page = substr(h, 1, n - 3)
        line = page ":" int(hexval(substr(h, n - 2)) / 64)
        key = ob SUBSEP line
        if (!(key in seen_line)) {
            seen_line[key] = 1; lines++
            if (index(ob, lib)) lib_lines++
        }
        pkey = ob SUBSEP page
        if (!(pkey in seen_page)) {
            seen_page[pkey] = 1; pages++
            if (index(ob, lib)) lib_pages++
        }
    }
    next
}
{ skip = 0 }
END { printf "%d %d %d %d\n", lines, pages, lib_lines, lib_pages }
