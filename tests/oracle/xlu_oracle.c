/*
 * xlu_oracle: asks Xen's own libxlutil how it reads xl config files and
 * PCI spec strings, and prints the answer as JSON lines.  The test in
 * tests/oracle.rs compares these answers with xenpci's readers.
 *
 * Written for this project (not derived from Xen sources); it only calls
 * the public API declared in libxlutil.h / libxl.h (Debian 12 libxen-dev,
 * Xen 4.17).
 *
 * Build (tests/oracle.rs runs the same command):
 *   cc -std=gnu11 -O1 -Wall -o xlu_oracle tests/oracle/xlu_oracle.c -lxlutil -lxenlight
 *
 * Usage:
 *   xlu_oracle cfg FILE KEY...      read FILE the way `xl create` does
 *                                   (whole file in memory, xlu_cfg_readdata)
 *   xlu_oracle cfgfile FILE KEY...  same, but through xlu_cfg_readfile
 *   xlu_oracle spec STRING...       one JSON line per PCI spec string
 *
 * cfg output, one line:
 *   {"rc":N,"report":"..."}                      when the parse failed
 *   {"rc":0,"values":{KEY:V,...},"report":"..."} when it succeeded, with V:
 *     {"kind":"absent"}
 *     {"kind":"string","hex":"6869"}
 *     {"kind":"list","items":["6869",null,...],"tree":"[s6869,[s31],s]"}
 *   "items" is what xlu_cfg_get_listitem gives (null when the item is not a
 *   string); "tree" is the whole value, nested lists included (read with
 *   xlu_cfg_get_listitem2), written flat so that any depth fits in JSON:
 *   a list is `[` items separated by `,` `]`, a string is `s` + its hex.
 *   Strings are printed as lowercase hex of their bytes (up to the C NUL).
 *   If libxlutil dies (e.g. an assertion), the line is
 *   {"rc":null,"signal":N,"report":""}.
 *
 * spec output, one line per string:
 *   {"rc":N,"report":"..."} on failure; on success
 *   {"rc":0,"domain":..,"bus":..,"dev":..,"func":..,"vdevfn":..,
 *    "vfunc_mask":..,"permissive":0|1,"msitranslate":0|1,"seize":0|1,
 *    "power_mgmt":0|1,"rdm_policy":N,"name":null|"..."}
 *   with "report" added when the parser wrote to its report stream.
 *   A spec that kills the process gives {"rc":null,"signal":N}.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libxlutil.h>

/* Print bytes as a JSON string; every byte outside printable ASCII is
 * written as \u00XX so the output stays valid UTF-8 whatever the input. */
static void put_json_bytes(const unsigned char *s, size_t n)
{
    size_t i;
    putchar('"');
    for (i = 0; i < n; i++) {
        unsigned c = s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* Print a C string as a JSON string, passing bytes >= 0x80 through
 * unchanged: used for keys and PCI names, which come from our argv (UTF-8). */
static void put_json_str(const char *s)
{
    if (!s) {
        fputs("null", stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        unsigned c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void put_hex(const char *s)
{
    putchar('"');
    for (; *s; s++)
        printf("%02x", (unsigned char)*s);
    putchar('"');
}

static void put_hex_bare(const char *s)
{
    for (; *s; s++)
        printf("%02x", (unsigned char)*s);
}

/* Recursion depth is bounded by libxlutil's own parser stack (10000). */
static void put_tree(const XLU_Config *cfg, XLU_ConfigList *list)
{
    int i;
    XLU_ConfigValue *v;
    putchar('[');
    for (i = 0; (v = xlu_cfg_get_listitem2(list, i)); i++) {
        if (i) putchar(',');
        if (xlu_cfg_value_type(v) == XLU_STRING) {
            char *s;
            xlu_cfg_value_get_string(cfg, v, &s, 1);
            putchar('s');
            put_hex_bare(s);
        } else {
            XLU_ConfigList *sub;
            xlu_cfg_value_get_list(cfg, v, &sub, 1);
            put_tree(cfg, sub);
        }
    }
    putchar(']');
}

static void put_value(const XLU_Config *cfg, const char *key)
{
    const char *s;
    XLU_ConfigList *list;
    int n, i, e;

    e = xlu_cfg_get_string(cfg, key, &s, 1);
    if (e == 0) {
        fputs("{\"kind\":\"string\",\"hex\":", stdout);
        put_hex(s);
        putchar('}');
        return;
    }
    if (e == ESRCH) {
        fputs("{\"kind\":\"absent\"}", stdout);
        return;
    }
    e = xlu_cfg_get_list(cfg, key, &list, &n, 1);
    if (e) {
        printf("{\"kind\":\"error\",\"errno\":%d}", e);
        return;
    }
    fputs("{\"kind\":\"list\",\"items\":[", stdout);
    for (i = 0; i < n; i++) {
        const char *item = xlu_cfg_get_listitem(list, i);
        if (i) putchar(',');
        if (item) put_hex(item); else fputs("null", stdout);
    }
    fputs("],\"tree\":\"", stdout);
    put_tree(cfg, list);
    fputs("\"}", stdout);
}

/* Read the whole file, as xl does before handing it to libxlutil. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    if (!f) return NULL;
    do {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = realloc(buf, cap);
            if (!buf) exit(2);
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got);
    fclose(f);
    *len = n;
    return buf;
}

static int do_cfg(int use_file, const char *path, int nkeys, char **keys)
{
    char *rep = NULL;
    size_t replen = 0;
    FILE *ms = open_memstream(&rep, &replen);
    XLU_Config *cfg;
    int rc, i;

    if (!ms) { perror("open_memstream"); return 2; }
    cfg = xlu_cfg_init(ms, path);
    if (!cfg) { perror("xlu_cfg_init"); return 2; }
    if (use_file) {
        rc = xlu_cfg_readfile(cfg, path);
    } else {
        size_t len;
        char *data = slurp(path, &len);
        if (!data) { perror(path); return 2; }
        rc = xlu_cfg_readdata(cfg, data, (int)len);
        free(data);
    }
    fflush(ms);
    printf("{\"rc\":%d", rc);
    if (rc == 0) {
        fputs(",\"values\":{", stdout);
        for (i = 0; i < nkeys; i++) {
            if (i) putchar(',');
            put_json_str(keys[i]);
            putchar(':');
            put_value(cfg, keys[i]);
        }
        putchar('}');
    }
    fflush(ms);
    fputs(",\"report\":", stdout);
    put_json_bytes((const unsigned char *)rep, replen);
    fputs("}\n", stdout);
    fflush(stdout);
    xlu_cfg_destroy(cfg);
    fclose(ms);
    free(rep);
    return 0;
}

static void do_spec(const char *str)
{
    char *rep = NULL;
    size_t replen = 0;
    FILE *ms = open_memstream(&rep, &replen);
    XLU_Config *cfg = xlu_cfg_init(ms, "command line");
    libxl_device_pci pci;
    int rc;

    if (!ms || !cfg) { perror("init"); exit(2); }
    libxl_device_pci_init(&pci);
    rc = xlu_pci_parse_spec_string(cfg, &pci, str);
    fflush(ms);
    printf("{\"rc\":%d", rc);
    if (rc == 0) {
        printf(",\"domain\":%d,\"bus\":%u,\"dev\":%u,\"func\":%u"
               ",\"vdevfn\":%u,\"vfunc_mask\":%u"
               ",\"permissive\":%d,\"msitranslate\":%d,\"seize\":%d"
               ",\"power_mgmt\":%d,\"rdm_policy\":%d,\"name\":",
               pci.domain, pci.bus, pci.dev, pci.func,
               pci.vdevfn, pci.vfunc_mask,
               (int)pci.permissive, (int)pci.msitranslate, (int)pci.seize,
               (int)pci.power_mgmt, (int)pci.rdm_policy);
        put_json_str(pci.name);
    }
    if (replen) {
        fputs(",\"report\":", stdout);
        put_json_bytes((const unsigned char *)rep, replen);
    }
    fputs("}\n", stdout);
    fflush(stdout);
    libxl_device_pci_dispose(&pci);
    xlu_cfg_destroy(cfg);
    fclose(ms);
    free(rep);
}

/* Run fn in a child so that a crash inside libxlutil becomes an answer. */
static int guarded(int (*fn)(int, char **), int argc, char **argv,
                   const char *crash_extra)
{
    pid_t pid;
    int status;
    fflush(stdout);
    pid = fork();
    if (pid < 0) { perror("fork"); return 2; }
    if (pid == 0) {
        signal(SIGABRT, SIG_DFL);
        _exit(fn(argc, argv));
    }
    if (waitpid(pid, &status, 0) < 0) { perror("waitpid"); return 2; }
    if (WIFSIGNALED(status)) {
        printf("{\"rc\":null,\"signal\":%d%s}\n", WTERMSIG(status), crash_extra);
        fflush(stdout);
        return 0;
    }
    return WEXITSTATUS(status);
}

static int cfg_main(int argc, char **argv)
{
    return do_cfg(!strcmp(argv[1], "cfgfile"), argv[2], argc - 3, argv + 3);
}

static int spec_one(int argc, char **argv)
{
    (void)argc;
    do_spec(argv[0]);
    return 0;
}

int main(int argc, char **argv)
{
    int i, r;
    if (argc >= 3 && (!strcmp(argv[1], "cfg") || !strcmp(argv[1], "cfgfile")))
        return guarded(cfg_main, argc, argv, ",\"report\":\"\"");
    if (argc >= 2 && !strcmp(argv[1], "spec")) {
        for (i = 2; i < argc; i++) {
            r = guarded(spec_one, 1, argv + i, "");
            if (r) return r;
        }
        return 0;
    }
    fprintf(stderr, "usage: %s cfg|cfgfile FILE KEY... | spec STRING...\n",
            argv[0]);
    return 2;
}
