/* SPDX-License-Identifier: MIT */
/*
 * Globs and access lists (doc/bus.md, doc/config.md "policy").
 *
 * A compiled list keeps its items in order, each pointing into one
 * normalised copy of the text (items joined by ", "):
 *
 *   text:  "!test*, $self, org.example.*"
 *           ^      ^      ^
 *   items: [DENY  "test*"] [SELF] [ALLOW "org.example.*" literal=false]
 *
 * bus_acl_allows() walks the items once; the first item that matches decides
 * (ALLOW/ANY/SELF/OWNER allow, DENY/NOT_SELF/NOT_OWNER deny), the end denies.
 * Literal globs (no '*' or '?') compare with bus_name_equal(); the others use
 * the iterative glob matcher below, which never recurses and runs in
 * O(len(pattern) * len(value)) at worst, linear for the usual one-star forms.
 */
#include <stdio.h>

#include "bus/acl.h"
#include "bus/names.h"

#include "common/util.h"

typedef enum acl_kind {
        ACL_ANY,       /* "*" */
        ACL_ALLOW,     /* glob */
        ACL_DENY,      /* "!glob" */
        ACL_SELF,      /* "$self" */
        ACL_OWNER,     /* "$owner" */
        ACL_NOT_SELF,  /* "!$self" */
        ACL_NOT_OWNER, /* "!$owner" */
} acl_kind;

typedef struct acl_item {
        acl_kind kind;
        bool literal;    /* glob without '*' / '?' */
        size_t pat_off;  /* the glob inside bus_acl.text */
        size_t pat_len;
} acl_item;

struct bus_acl {
        char *text;
        size_t n_items;
        acl_item items[];
};

static inline unsigned char fold(unsigned char c)
{
        return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/*
 * Classic glob with backtracking to the last '*' only: when a literal run after
 * a star fails, the star swallows one more byte and the run is retried.  Earlier
 * stars never need revisiting (a later star can absorb anything they would),
 * which is what keeps this free of exponential blow-up on "*a*a*a*...b".
 */
bool bus_glob_match(const char *pat, size_t plen, const char *s, size_t slen)
{
        size_t p = 0, i = 0;
        size_t star_p = SIZE_MAX, star_i = 0;

        while (i < slen) {
                if (p < plen && pat[p] == '*') {
                        /* Collapse runs of stars; remember where to resume. */
                        while (p < plen && pat[p] == '*')
                                p++;
                        if (p == plen)
                                return true;
                        star_p = p;
                        star_i = i;
                        continue;
                }
                if (p < plen &&
                    (pat[p] == '?' || fold((unsigned char)pat[p]) == fold((unsigned char)s[i]))) {
                        p++;
                        i++;
                        continue;
                }
                if (star_p == SIZE_MAX)
                        return false;
                p = star_p;
                i = ++star_i;
        }
        while (p < plen && pat[p] == '*')
                p++;
        return p == plen;
}

bool bus_glob_is_literal(const char *pat, size_t plen)
{
        for (size_t i = 0; i < plen; i++)
                if (pat[i] == '*' || pat[i] == '?')
                        return false;
        return true;
}

static inline bool is_separator(char c)
{
        return c == ',' || c == ';' || c == ' ' || c == '\t';
}

/* Glob characters plus what host and app names are made of. */
static inline bool is_glob_char(char c)
{
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.' || c == '-' || c == '*' || c == '?';
}

static bool word_is(const char *s, size_t len, const char *word)
{
        return bus_name_equal(s, len, word, strlen(word));
}

/* Classifies one item text[off, off+len); fills *it with the pattern's offset in text. */
static int parse_item(const char *text, size_t off, size_t len, acl_item *it, hyb_error *reterr)
{
        const char *s = text + off;
        bool neg = false;
        size_t skip = 0;

        if (s[0] == '!') {
                neg = true;
                skip = 1;
                if (len == 1)
                        return err_set(reterr, HYB_E_NOT_ACCEPTABLE, (long)off,
                                       "access list: '!' without a pattern at offset %zu", off);
        }
        it->pat_off = off + skip;
        it->pat_len = len - skip;
        it->literal = false;

        if (s[skip] == '$') {
                const char *v = s + skip;
                size_t vlen = len - skip;

                /* Keywords fold case like everything else in a list. */
                if (word_is(v, vlen, "$self"))
                        it->kind = neg ? ACL_NOT_SELF : ACL_SELF;
                else if (word_is(v, vlen, "$owner"))
                        it->kind = neg ? ACL_NOT_OWNER : ACL_OWNER;
                else
                        return err_set(reterr, HYB_E_NOT_ACCEPTABLE, (long)(off + skip),
                                       "access list: unknown variable '%.*s' at offset %zu "
                                       "(expected $self or $owner)",
                                       (int)(vlen > 32 ? 32 : vlen), v, off + skip);
                return 0;
        }

        for (size_t i = skip; i < len; i++) {
                if (!is_glob_char(s[i])) {
                        unsigned char u = (unsigned char)s[i];

                        if (u > 0x20 && u < 0x7f)
                                return err_set(reterr, HYB_E_NOT_ACCEPTABLE, (long)(off + i),
                                               "access list: invalid character '%c' at offset %zu",
                                               s[i], off + i);
                        return err_set(reterr, HYB_E_NOT_ACCEPTABLE, (long)(off + i),
                                       "access list: invalid byte 0x%02x at offset %zu", u,
                                       off + i);
                }
        }

        if (!neg && len == 1 && s[0] == '*')
                it->kind = ACL_ANY;
        else
                it->kind = neg ? ACL_DENY : ACL_ALLOW;
        it->literal = bus_glob_is_literal(s + skip, len - skip);
        return 0;
}

int bus_acl_compile(const char *text, bus_acl **ret, hyb_error *reterr)
{
        _cleanup_free_ bus_acl *acl = NULL;
        _cleanup_free_ char *norm = NULL;
        size_t len, n_items = 0, nlen = 0;

        hyb_assert_return(ret, -EINVAL);

        if (!text || !*text)
                text = "*";
        len = strlen(text);
        if (len > BUS_ACL_TEXT_MAX)
                return err_set(reterr, HYB_E_NOT_ACCEPTABLE, (long)BUS_ACL_TEXT_MAX,
                               "access list: longer than %u bytes", BUS_ACL_TEXT_MAX);

        /* Items never outnumber half the bytes plus one: size the array once.  The
         * normalised text may be longer than the input ("a;b" -> "a, b"): at most
         * two bytes of separator per item. */
        acl = malloc(sizeof(*acl) + (len / 2 + 1) * sizeof(acl_item));
        norm = malloc(len + 2 * (len / 2 + 1) + 1);
        if (!acl || !norm)
                return -ENOMEM;

        for (size_t i = 0; i < len;) {
                size_t start, n;
                int r;

                while (i < len && is_separator(text[i]))
                        i++;
                if (i == len)
                        break;
                start = i;
                while (i < len && !is_separator(text[i]))
                        i++;
                n = i - start;

                /* Validate against the original text so offsets point into what the user wrote. */
                r = parse_item(text, start, n, &acl->items[n_items], reterr);
                if (r < 0)
                        return r;

                /* Re-base the item onto the normalised copy. */
                if (nlen > 0) {
                        memcpy(norm + nlen, ", ", 2);
                        nlen += 2;
                }
                acl->items[n_items].pat_off = acl->items[n_items].pat_off - start + nlen;
                memcpy(norm + nlen, text + start, n);
                nlen += n;
                n_items++;
        }

        /* "a,,b" is fine (a run of separators), but a list of separators only has no item. */
        if (n_items == 0)
                return err_set(reterr, HYB_E_NOT_ACCEPTABLE, 0,
                               "access list: no items (only separators)");

        norm[nlen] = '\0';
        acl->n_items = n_items;
        acl->text = TAKE_PTR(norm);
        *ret = TAKE_PTR(acl);
        return 0;
}

bus_acl *bus_acl_free(bus_acl *acl)
{
        if (acl) {
                free(acl->text);
                free(acl);
        }
        return NULL;
}

static bool item_matches(const bus_acl *acl, const acl_item *it, const char *value, size_t len)
{
        const char *pat = acl->text + it->pat_off;

        if (it->literal)
                return bus_name_equal(pat, it->pat_len, value, len);
        return bus_glob_match(pat, it->pat_len, value, len);
}

static bool same(const char *ref, const char *value, size_t len)
{
        return ref && bus_name_equal(ref, strlen(ref), value, len);
}

bool bus_acl_allows(const bus_acl *acl, const char *value, size_t len, const char *self_host,
                    const char *owner_app)
{
        /* No list at all means "*" (the registration gave no pattern). */
        if (!acl)
                return true;
        if (!value && len)
                return false;

        for (size_t k = 0; k < acl->n_items; k++) {
                const acl_item *it = &acl->items[k];

                switch (it->kind) {
                case ACL_ANY:
                        return true;
                case ACL_ALLOW:
                        if (item_matches(acl, it, value, len))
                                return true;
                        break;
                case ACL_DENY:
                        if (item_matches(acl, it, value, len))
                                return false;
                        break;
                case ACL_SELF:
                        if (same(self_host, value, len))
                                return true;
                        break;
                case ACL_OWNER:
                        if (same(owner_app, value, len))
                                return true;
                        break;
                case ACL_NOT_SELF:
                        if (same(self_host, value, len))
                                return false;
                        break;
                case ACL_NOT_OWNER:
                        if (same(owner_app, value, len))
                                return false;
                        break;
                }
        }
        return false;
}

const char *bus_acl_text(const bus_acl *acl)
{
        return acl ? acl->text : "*";
}
