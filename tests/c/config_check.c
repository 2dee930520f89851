/*
 * config_check.c - pgsess_config_check (issue 16): a configuration checked without connecting,
 * as a deployment's CI would. Both of libpq's forms, a session name (PGSQL_<NAME>), a service
 * file, and the refusals: invalid values and unknown keywords (PGSESS_CONFIG_ERROR), keywords
 * pgsess does not support (PGSESS_NOT_SUPPORTED_ERROR). No message may show the password.
 * Needs env PGSQL_CTEST (used only as a valid string: nothing here connects).
 */
#define _POSIX_C_SOURCE 200809L
#include <pgsess.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

/* pgsess_config_check(s) gives `want`; on an error, its message contains `words` (when not
 * NULL) and never the password. */
static void expect_(const char *s, pgsess_code want, const char *words, const char *file, int line)
{
    pgsess_error *err = NULL;
    pgsess_code got = pgsess_config_check(s, &err);
    int ok = got == want && (want == PGSESS_OK) == (err == NULL);
    if (ok && err != NULL) {
        const char *m = pgsess_error_message(err);
        ok = pgsess_error_code(err) == want && (words == NULL || strstr(m, words) != NULL) &&
             strstr(m, "hunter2") == NULL && strstr(m, "never-shown") == NULL;
    }
    check_count_(ok);
    if (!ok) {
        fflush(stdout);
        fprintf(stderr, "%s:%d: CHECK failed: pgsess_config_check(\"%s\") gives %s%s%s\n    got: %s: %s\n",
                file, line, s, pgsess_code_name(want), words ? " saying " : "", words ? words : "",
                pgsess_code_name(got), err ? pgsess_error_message(err) : "(no error)");
    }
    pgsess_error_free(err);
}
#define EXPECT(s, want, words) expect_((s), (want), (words), __FILE__, __LINE__)

int main(void)
{
    const char *uri = getenv("PGSQL_CTEST");
    if (uri == NULL) {
        fprintf(stderr, "config_check: PGSQL_CTEST is not set\n");
        return 2;
    }
    /* No stray settings from the caller's environment. */
    unsetenv("PGSERVICE");
    unsetenv("PGSERVICEFILE");

    EXPECT(uri, PGSESS_OK, NULL);
    EXPECT("postgresql://u:hunter2@db.example.com:6000,[::1]/app?sslmode=require", PGSESS_OK, NULL);
    EXPECT("host=db.example.com port=6000 dbname='my app' password='hunter2' sslmode=verify-full", PGSESS_OK,
           NULL);
    EXPECT("host = h   user=a\\ b application_name='it\\'s'", PGSESS_OK, NULL);

    /* A session name reads PGSQL_<NAME>, as pgsess_open does. */
    setenv("PGSQL_CHECKED", "host=h dbname=d password=hunter2", 1);
    EXPECT("checked", PGSESS_OK, NULL);
    setenv("PGSQL_CHECKED", "host=h port=notaport password=hunter2", 1);
    EXPECT("checked", PGSESS_CONFIG_ERROR, "PGSQL_CHECKED");
    EXPECT("never-set-anywhere", PGSESS_CONFIG_ERROR, "PGSQL_NEVER-SET-ANYWHERE");

    /* Invalid values libpq would only refuse when connecting. */
    EXPECT("host=h sslmode=sometimes", PGSESS_CONFIG_ERROR, "sslmode");
    EXPECT("host=h port=70000", PGSESS_CONFIG_ERROR, "port");
    EXPECT("postgresql://h/d?target_session_attrs=master", PGSESS_CONFIG_ERROR, "target_session_attrs");
    EXPECT("host=h load_balance_hosts=always", PGSESS_CONFIG_ERROR, "load_balance_hosts");
    EXPECT("host=h require_auth=md6", PGSESS_CONFIG_ERROR, "require_auth");
    EXPECT("host=h bogus=1", PGSESS_CONFIG_ERROR, "bogus");
    EXPECT("host=h password='hunter2", PGSESS_CONFIG_ERROR, "unterminated");
    EXPECT("password=hunter2 never-shown", PGSESS_CONFIG_ERROR, "missing");

    /* sslpassword decrypts an encrypted key (never shown); direct TLS needs a strict sslmode. */
    EXPECT("host=h sslpassword=never-shown sslkey=/nonexistent.key", PGSESS_OK, NULL);
    EXPECT("host=h sslmode=require sslnegotiation=direct", PGSESS_OK, NULL);
    EXPECT("host=h sslmode=prefer sslnegotiation=direct", PGSESS_CONFIG_ERROR, "sslnegotiation=direct");

    /* Keywords pgsess does not support: refused, named, with a reason. */
    EXPECT("host=h krbsrvname=postgres", PGSESS_NOT_SUPPORTED_ERROR, "krbsrvname");
    EXPECT("host=h gsslib=gssapi", PGSESS_NOT_SUPPORTED_ERROR, "gsslib");
    EXPECT("host=h replication=database", PGSESS_NOT_SUPPORTED_ERROR, "replication");
    EXPECT("host=h client_encoding=LATIN1", PGSESS_NOT_SUPPORTED_ERROR, "client_encoding");
    EXPECT("host=h gssencmode=require", PGSESS_NOT_SUPPORTED_ERROR, "gssencmode");

    /* A service file: found, and a service it does not define is refused. */
    char dir[] = "/tmp/pgsess-config-check.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/services.conf", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        fputs("# test services\n[billing]\nhost=billing.example.com\nport=6432\ndbname=billing\n"
              "password=hunter2\n",
              f);
        fclose(f);
    }
    setenv("PGSERVICEFILE", path, 1);
    setenv("PGSYSCONFDIR", dir, 1);
    EXPECT("service=billing", PGSESS_OK, NULL);
    EXPECT("postgresql:///?service=billing", PGSESS_OK, NULL);
    EXPECT("service=payroll", PGSESS_CONFIG_ERROR, "payroll");
    setenv("PGSERVICE", "billing", 1);
    EXPECT("", PGSESS_CONFIG_ERROR, "PGSQL");
    setenv("PGSQL", "dbname=other", 1);
    EXPECT("", PGSESS_OK, NULL);
    unsetenv("PGSERVICE");
    unlink(path);
    rmdir(dir);

    /* Misuse. */
    EXPECT(NULL, PGSESS_INTERFACE_ERROR, NULL);
    CHECK(pgsess_config_check("host=h", NULL) == PGSESS_OK);
    CHECK(pgsess_config_check("host=h port=x", NULL) == PGSESS_CONFIG_ERROR);
    return CHECK_DONE();
}
