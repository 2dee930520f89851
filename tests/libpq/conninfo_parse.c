/*
 * conninfo_parse.c - what libpq makes of connection strings, for tests/conninfo.rs to compare
 * pgsess's parser with. Linked against libpq only; built by that test.
 *
 *   conninfo_parse parse      reads NUL-terminated strings on stdin; for each, prints the
 *                             options PQconninfoParse sets ("keyword<TAB>value" lines) or
 *                             "ERROR<TAB>message", then a line "--"
 *   conninfo_parse defaults   prints PQconndefaults() as "keyword<TAB>value" lines: the values
 *                             libpq takes from a service file (PGSERVICE) and the environment
 *   conninfo_parse keywords   prints "keyword<TAB>envvar" for each keyword libpq knows
 *
 * Values are printed with \\, \t and \n escaped as backslash sequences.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_escaped(const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", stdout);
        else if (*s == '\t')
            fputs("\\t", stdout);
        else if (*s == '\n')
            fputs("\\n", stdout);
        else
            putchar(*s);
    }
}

static void print_options(const PQconninfoOption *o)
{
    for (; o->keyword; o++) {
        if (o->val == NULL)
            continue;
        fputs(o->keyword, stdout);
        putchar('\t');
        put_escaped(o->val);
        putchar('\n');
    }
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "keywords") == 0 || strcmp(mode, "defaults") == 0) {
        PQconninfoOption *o = PQconndefaults();
        if (o == NULL)
            return 1;
        if (mode[0] == 'k') {
            for (PQconninfoOption *p = o; p->keyword; p++)
                printf("%s\t%s\n", p->keyword, p->envvar ? p->envvar : "");
        } else {
            print_options(o);
        }
        PQconninfoFree(o);
        return 0;
    }
    if (strcmp(mode, "parse") != 0) {
        fprintf(stderr, "usage: conninfo_parse parse|defaults|keywords\n");
        return 2;
    }
    size_t cap = 1024, len = 0;
    char *buf = malloc(cap);
    int c;
    if (buf == NULL)
        return 1;
    while ((c = getchar()) != EOF) {
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (buf == NULL)
                return 1;
        }
        buf[len++] = (char) c;
        if (c != '\0')
            continue;
        char *err = NULL;
        PQconninfoOption *o = PQconninfoParse(buf, &err);
        if (o == NULL) {
            fputs("ERROR\t", stdout);
            put_escaped(err ? err : "out of memory");
            putchar('\n');
        } else {
            print_options(o);
            PQconninfoFree(o);
        }
        PQfreemem(err);
        puts("--");
        len = 0;
    }
    free(buf);
    return 0;
}
