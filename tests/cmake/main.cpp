// Consumer test for the pgsess CMake package: builds with find_package(pgsess) and
// target_link_libraries(app PRIVATE pgsess::pgsess), then runs one statement on the session
// "ctest" (URI from PGSQL_CTEST). Prints "N passed, M failed"; exit 0 on success.
#include <pgsess.hpp>

#include <cstdlib>
#include <iostream>
#include <optional>
#include <string_view>

int main() {
    if (std::getenv("PGSQL_CTEST") == nullptr) {
        std::cerr << "PGSQL_CTEST is not set\n";
        return 2;
    }
    int passed = 0;
    int failed = 0;
    auto check = [&](bool ok, const char *what) {
        if (ok) {
            ++passed;
        } else {
            ++failed;
            std::cerr << "CHECK failed: " << what << "\n";
        }
    };
    try {
        std::cout << "pgsess " << pgsess::version() << "\n";
        pgsess::Session s("ctest");
        auto r = s.query("SELECT $1::int + 1 AS answer", 41);
        check(r.value(0, 0) == std::optional<std::string_view>("42"), "SELECT $1::int + 1 gives 42");
        for (auto row : r)
            check(row["answer"] == std::optional<std::string_view>("42"), "row[\"answer\"] is 42");
        try {
            s.query("SELECT 1/0");
            check(false, "SELECT 1/0 throws");
        } catch (const pgsess::Error &e) {
            check(e.code() == PGSESS_DATA_ERROR && e.sqlstate() == std::optional<std::string>("22012"),
                  "SELECT 1/0 throws PGSESS_DATA_ERROR 22012");
        }
    } catch (const pgsess::Error &e) {
        check(false, e.what());
    }
    std::cout << passed << " passed, " << failed << " failed\n";
    return failed == 0 ? 0 : 1;
}
