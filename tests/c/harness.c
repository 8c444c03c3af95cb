/*
 * C harness for libsipsd: uses include/sipsd.h exactly as a C caller (the Kamailio module)
 * does, including error paths and fork() with the dialog key cache shared between processes.
 *
 * usage: harness KEYDIR MSGDIR
 *   KEYDIR: proxy1.key proxy1.crt psk-proxy1.hex, bob@example.net.crt (callee.crt: the
 *           callee an edge seals for)
 *   MSGDIR: offer.der (AuthEnvelopedData for callee+proxy1), indialog.der (EncryptedData,
 *           same key), rotated.der (new key for callee+proxy1), rotated-indialog.der,
 *           offer-b.der / indialog-b.der (a second dialog), offer-cbc.der / indialog-cbc.der
 *           (an AES-CBC dialog), other.der (callee+proxy2 only),
 *           truncated.der, offer.sdp (plaintext of offer.der), media.der / media.sdp (an
 *           offer whose SDP has four streams: tests/data/sip/multistream.sdp), badsdp.der (an
 *           offer whose SDP has a malformed m= line)
 * Prints one "ok"/"not ok" line per check and "N passed, M failed"; exit status 0 iff all pass.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <signal.h>

#include "sipsd.h"

static int passed, failed;

#define CHECK(cond, ...)                                                     \
	do {                                                                     \
		if(cond) {                                                           \
			passed++;                                                        \
			printf("ok %d - ", passed + failed);                             \
		} else {                                                             \
			failed++;                                                        \
			printf("not ok %d - ", passed + failed);                         \
		}                                                                    \
		printf(__VA_ARGS__);                                                 \
		printf("\n");                                                        \
		fflush(stdout);                                                      \
	} while(0)

typedef struct file_buf { unsigned char *data; size_t len; } file_buf;

static file_buf slurp(const char *dir, const char *name)
{
	char path[4096];
	file_buf b = {NULL, 0};
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if(!f) {
		fprintf(stderr, "cannot open %s\n", path);
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	b.data = malloc(n > 0 ? n : 1);
	b.len = fread(b.data, 1, n, f);
	fclose(f);
	return b;
}

static sd_str s(const char *text)
{
	sd_str v = {(const uint8_t *)text, strlen(text)};
	return v;
}

static const char *SMIME_AUTH =
		"application/pkcs7-mime; smime-type=authEnveloped-data; name=smime.p7m";
static const char *SMIME_ENV =
		"application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m";
static const char *SMIME_ENC =
		"application/pkcs7-mime; smime-type=encrypted-data; name=smime.p7m";

/* A message of dialog (call_id, ftag) with a binary body. */
static sd_msg msg_of(const char *call_id, const char *ftag, const char *ttag,
		const char *method, uint32_t status, const char *ctype, file_buf body)
{
	sd_msg m;
	memset(&m, 0, sizeof(m));
	m.call_id = s(call_id);
	m.from_tag = s(ftag);
	m.to_tag = s(ttag);
	m.method = s(method);
	m.status = status;
	m.content_type = s(ctype);
	m.body.ptr = body.data;
	m.body.len = body.len;
	return m;
}

static int field_eq(const sd_plain *p, uint32_t field, const char *want)
{
	sd_str v;
	if(sd_plain_get(p, 0, field, &v) != SD_OK)
		return 0;
	return v.len == strlen(want) && memcmp(v.ptr, want, v.len) == 0;
}

/* the number of the field of a name table called `name`, or UINT32_MAX */
static uint32_t field_by_name(uint32_t count, const char *(*name_of)(uint32_t), const char *name)
{
	for(uint32_t f = 0; f < count; f++) {
		if(strcmp(name_of(f), name) == 0)
			return f;
	}
	return UINT32_MAX;
}

/* whether a name table is sane: `count` distinct non-empty names, NULL past the end */
static int names_ok(uint32_t count, const char *(*name_of)(uint32_t), const char *first)
{
	if(count == 0 || name_of(count) != NULL || strcmp(name_of(0), first) != 0)
		return 0;
	for(uint32_t i = 0; i < count; i++) {
		if(name_of(i) == NULL || name_of(i)[0] == '\0')
			return 0;
		for(uint32_t j = 0; j < i; j++) {
			if(strcmp(name_of(i), name_of(j)) == 0)
				return 0;
		}
	}
	return 1;
}

static int view_eq(sd_result r, sd_str v, const char *want)
{
	if(want == NULL)
		return r == SD_ERR_INVALID_ARGUMENT && v.len == 0 && v.ptr == NULL;
	return r == SD_OK && v.len == strlen(want) && memcmp(v.ptr, want, v.len) == 0;
}

/* What the harness expects of tests/data/sip/multistream.sdp: one row per stream and field
 * (NULL: the field is absent), and one per stream, attribute and crypto field. */
typedef struct media_row { size_t media; const char *field; const char *want; } media_row;
typedef struct crypto_row {
	size_t media, crypto;
	const char *field, *want;
} crypto_row;

#define K1 "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
#define K2 "e/IE6DDnxCd/vDkFWDQMew4l8R2szuZ69f5frz9wQDBAOr2WASQcfvnx5QGWww=="
#define K3 "CQG/tnHyTi+J7QJor/frrcuc1dzNTAyGqS/GKA=="

static const media_row MEDIA_ROWS[] = {
	{0, "kind", "audio"}, {0, "port", "49170"}, {0, "port_count", "1"},
	{0, "proto", "RTP/SAVP"}, {0, "formats", "0 8 101"}, {0, "addr", "192.0.2.10"},
	{0, "addr_type", "IP4"}, {0, "multicast", "0"}, {0, "rtcp_port", "49171"},
	{0, "rtcp_addr", "198.51.100.9"}, {0, "rtcp_mux", "0"}, {0, "direction", "sendrecv"},
	{0, "crypto_count", "2"}, {0, "rtpmap", "0 PCMU/8000, 8 PCMA/8000, 101 telephone-event/8000"},
	{1, "kind", "video"}, {1, "port", "51372"}, {1, "port_count", "2"},
	{1, "proto", "RTP/SAVPF"}, {1, "formats", "96 97"}, {1, "addr", "2001:db8::2"},
	{1, "addr_type", "IP6"}, {1, "multicast", "0"}, {1, "rtcp_port", "51381"},
	{1, "rtcp_addr", "2001:db8::2"}, {1, "rtcp_mux", "0"}, {1, "direction", "sendonly"},
	{1, "crypto_count", "1"}, {1, "rtpmap", "96 H264/90000, 97 VP8/90000"},
	{2, "kind", "application"}, {2, "port", "50000"}, {2, "port_count", "1"},
	{2, "proto", "UDP/TLS/RTP/SAVPF"}, {2, "formats", "100"}, {2, "addr", "192.0.2.10"},
	{2, "addr_type", "IP4"}, {2, "multicast", "0"}, {2, "rtcp_port", "50000"},
	{2, "rtcp_addr", "192.0.2.10"}, {2, "rtcp_mux", "1"}, {2, "direction", "recvonly"},
	{2, "crypto_count", "0"}, {2, "rtpmap", NULL},
	{3, "kind", "audio"}, {3, "port", "0"}, {3, "port_count", "1"},
	{3, "proto", "RTP/AVP"}, {3, "formats", "0"}, {3, "addr", "192.0.2.10"},
	{3, "addr_type", "IP4"}, {3, "multicast", "0"}, {3, "rtcp_port", NULL},
	{3, "rtcp_addr", NULL}, {3, "rtcp_mux", "0"}, {3, "direction", "sendrecv"},
	{3, "crypto_count", "0"}, {3, "rtpmap", NULL},
};

static const crypto_row CRYPTO_ROWS[] = {
	{0, 0, "tag", "1"}, {0, 0, "suite", "AES_CM_128_HMAC_SHA1_80"},
	{0, 0, "key_params", "inline:" K1 "|2^20|1:32"}, {0, 0, "session_params", NULL},
	{0, 0, "value", "1 AES_CM_128_HMAC_SHA1_80 inline:" K1 "|2^20|1:32"},
	{0, 1, "tag", "2"}, {0, 1, "suite", "AES_256_CM_HMAC_SHA1_80"},
	{0, 1, "key_params", "inline:" K2 "|2^31"}, {0, 1, "session_params", "KDR=0 WSH=128"},
	{0, 1, "value", "2 AES_256_CM_HMAC_SHA1_80 inline:" K2 "|2^31 KDR=0 WSH=128"},
	{1, 0, "tag", "7"}, {1, 0, "suite", "AEAD_AES_128_GCM"},
	{1, 0, "key_params", "inline:" K3}, {1, 0, "session_params", NULL},
	{1, 0, "value", "7 AEAD_AES_128_GCM inline:" K3},
};

#define ROWS(a) (sizeof(a) / sizeof((a)[0]))

/* Every field of every stream and attribute of the multi-stream offer, each read once and
 * compared with its row; every (stream, field) pair has exactly one row. */
static void check_media(const sd_plain *p)
{
	size_t nmedia = sd_plain_media_count(p, 0), i, j, k;
	uint32_t nf = sd_media_field_count(), ncf = sd_crypto_field_count(), f;
	int read = 0, wrong = 0, unnamed = 0;
	sd_str v;
	sd_result r;

	CHECK(nmedia == 4, "four media streams (%zu)", nmedia);
	CHECK(field_eq(p, SD_FIELD_MEDIA_COUNT, "4"), "SD_FIELD_MEDIA_COUNT is 4");
	CHECK(sd_plain_get(p, 0, SD_FIELD_SDP_ERROR, &v) == SD_ERR_INVALID_ARGUMENT && v.len == 0,
			"a valid SDP has no SD_FIELD_SDP_ERROR");
	for(k = 0; k < ROWS(MEDIA_ROWS); k++) {
		const media_row *row = &MEDIA_ROWS[k];
		f = field_by_name(nf, sd_media_field_name, row->field);
		unnamed += f == UINT32_MAX;
		r = sd_plain_media_get(p, 0, row->media, f, &v);
		read++;
		if(!view_eq(r, v, row->want)) {
			wrong++;
			printf("# media %zu %s: got %u \"%.*s\", want %s\n", row->media, row->field,
					(unsigned)r, (int)v.len, v.ptr ? (const char *)v.ptr : "",
					row->want ? row->want : "(absent)");
		}
	}
	CHECK(unnamed == 0 && ROWS(MEDIA_ROWS) == nmedia * nf,
			"the rows name every one of the %u media fields of each of the %zu streams", nf,
			nmedia);
	CHECK(wrong == 0, "%d media fields read through sd_plain_media_get, each as expected "
					  "(audio+video+rtcp-mux+disabled, IPv6, session c=, a=rtcp, port count)",
			read);

	read = wrong = unnamed = 0;
	j = 0; /* attributes in the SDP */
	for(i = 0; i < nmedia; i++)
		j += sd_plain_crypto_count(p, 0, i);
	for(k = 0; k < ROWS(CRYPTO_ROWS); k++) {
		const crypto_row *row = &CRYPTO_ROWS[k];
		f = field_by_name(ncf, sd_crypto_field_name, row->field);
		unnamed += f == UINT32_MAX;
		r = sd_plain_crypto_get(p, 0, row->media, row->crypto, f, &v);
		read++;
		if(!view_eq(r, v, row->want)) {
			wrong++;
			/* never print what may be a key: the field name says which one */
			printf("# media %zu crypto %zu %s: got %u (%zu bytes)\n", row->media,
					row->crypto, row->field, (unsigned)r, v.len);
		}
	}
	CHECK(unnamed == 0 && ROWS(CRYPTO_ROWS) == j * ncf && sd_plain_crypto_count(p, 0, 0) == 2
					&& sd_plain_crypto_count(p, 0, 1) == 1 && sd_plain_crypto_count(p, 0, 2) == 0,
			"crypto counts 2, 1, 0, 0 and a row for each of the %u fields of each attribute",
			ncf);
	CHECK(wrong == 0, "%d a=crypto fields read through sd_plain_crypto_get, each as expected "
					  "(tags, suites, key params, session params, values)",
			read);

	/* the single-stream fields show the first audio stream */
	CHECK(field_eq(p, SD_FIELD_MEDIA_ADDR, "192.0.2.10") && field_eq(p, SD_FIELD_MEDIA_PORT, "49170")
					&& field_eq(p, SD_FIELD_CRYPTO,
							"1 AES_CM_128_HMAC_SHA1_80 inline:" K1 "|2^20|1:32"),
			"SD_FIELD_MEDIA_ADDR/PORT/CRYPTO still give the first audio stream");

	/* range and null checks */
	v.len = 9;
	CHECK(sd_plain_media_get(p, 0, nmedia, 0, &v) == SD_ERR_INVALID_ARGUMENT && v.len == 0,
			"media index out of range -> SD_ERR_INVALID_ARGUMENT, empty view");
	CHECK(sd_plain_media_get(p, 0, 0, nf, &v) == SD_ERR_INVALID_ARGUMENT
					&& sd_plain_media_get(p, 1, 0, 0, &v) == SD_ERR_INVALID_ARGUMENT,
			"media field number %u and part 1 out of range refused", nf);
	CHECK(sd_plain_crypto_get(p, 0, 0, 2, 0, &v) == SD_ERR_INVALID_ARGUMENT
					&& sd_plain_crypto_get(p, 0, 2, 0, 0, &v) == SD_ERR_INVALID_ARGUMENT
					&& sd_plain_crypto_get(p, 0, 0, 0, ncf, &v) == SD_ERR_INVALID_ARGUMENT,
			"crypto index, a stream without a=crypto and crypto field %u refused", ncf);
	CHECK(sd_plain_media_get(NULL, 0, 0, 0, &v) == SD_ERR_NULL_PARAMETER
					&& sd_plain_media_get(p, 0, 0, 0, NULL) == SD_ERR_NULL_PARAMETER
					&& sd_plain_crypto_get(NULL, 0, 0, 0, 0, &v) == SD_ERR_NULL_PARAMETER
					&& sd_plain_crypto_get(p, 0, 0, 0, 0, NULL) == SD_ERR_NULL_PARAMETER,
			"NULL sd_plain or out pointer refused by both getters");
	CHECK(sd_plain_media_count(NULL, 0) == 0 && sd_plain_media_count(p, 1) == 0
					&& sd_plain_crypto_count(NULL, 0, 0) == 0
					&& sd_plain_crypto_count(p, 0, nmedia) == 0,
			"counts are 0 for NULL and out of range");
}

/* Unwraps m; returns the result code; checks generation/source if want_gen > 0. */
static sd_result unwrap(const sd_ctx *ctx, const sd_msg *m, uint32_t *gen, char *source,
		size_t source_len)
{
	sd_plain *p = NULL;
	sd_result r = sd_unwrap_body(ctx, m, &p);
	if(r == SD_OK) {
		sd_str v;
		if(gen)
			*gen = sd_plain_generation(p);
		if(source && sd_plain_get(p, 0, SD_FIELD_KEY_SOURCE, &v) == SD_OK
				&& v.len < source_len) {
			memcpy(source, v.ptr, v.len);
			source[v.len] = '\0';
		}
	}
	sd_plain_free(p);
	return r;
}

/* an edge context sealing for the certificates in keydir (bob@example.net.crt) and proxy1 */
static sd_ctx *edge_ctx(const char *keydir, const char *unsealable)
{
	char opt[4096];
	sd_ctx *edge = NULL;
	sd_config *cfg = sd_config_new();
	sd_result r = sd_config_set(cfg, "role", "edge");
	r |= sd_config_set(cfg, "callee_cert_dir", keydir);
	snprintf(opt, sizeof(opt), "%s/proxy1.crt", keydir);
	r |= sd_config_set(cfg, "proxy_cert", opt);
	r |= sd_config_set(cfg, "unsealable", unsealable);
	if(r == SD_OK)
		r = sd_ctx_new(cfg, &edge);
	sd_config_free(cfg);
	return r == SD_OK ? edge : NULL;
}

/* the value of the statistic called `name`, or UINT64_MAX if there is none */
static uint64_t stat(const sd_ctx *ctx, const char *name)
{
	uint64_t v;
	for(size_t i = 0; i < sd_stat_count(); i++) {
		if(strcmp(sd_stat_name(i), name) == 0)
			return sd_stat_value(ctx, i, &v) == SD_OK ? v : UINT64_MAX;
	}
	return UINT64_MAX;
}

int main(int argc, char **argv)
{
	const char *keydir, *msgdir;
	char opt[8192], source[32];
	sd_config *cfg;
	sd_ctx *ctx = NULL, *bad_ctx = NULL;
	sd_plain *plain = NULL;
	sd_result r;
	sd_str v;
	uint32_t gen = 0;
	pid_t pid;
	int status;

	if(argc != 3) {
		fprintf(stderr, "usage: %s KEYDIR MSGDIR\n", argv[0]);
		return 2;
	}
	keydir = argv[1];
	msgdir = argv[2];
	file_buf offer = slurp(msgdir, "offer.der");
	file_buf indialog = slurp(msgdir, "indialog.der");
	file_buf rotated = slurp(msgdir, "rotated.der");
	file_buf rotated_in = slurp(msgdir, "rotated-indialog.der");
	file_buf offer_b = slurp(msgdir, "offer-b.der");
	file_buf indialog_b = slurp(msgdir, "indialog-b.der");
	file_buf offer_c = slurp(msgdir, "offer-cbc.der");
	file_buf indialog_c = slurp(msgdir, "indialog-cbc.der");
	file_buf other = slurp(msgdir, "other.der");
	file_buf truncated = slurp(msgdir, "truncated.der");
	file_buf sdp = slurp(msgdir, "offer.sdp");
	file_buf media = slurp(msgdir, "media.der");
	file_buf media_sdp = slurp(msgdir, "media.sdp");
	file_buf badsdp = slurp(msgdir, "badsdp.der");

	/* -- version, messages -- */
	CHECK(sd_version() && strlen(sd_version()) > 0, "sd_version: %s", sd_version());
	CHECK(strcmp(sd_strerror(SD_ERR_NOT_RECIPIENT), "not a recipient") == 0,
			"sd_strerror(SD_ERR_NOT_RECIPIENT) = \"%s\"", sd_strerror(SD_ERR_NOT_RECIPIENT));
	CHECK(strcmp(sd_strerror(9999), "unknown result") == 0, "sd_strerror of an unknown code");

	/* -- configuration errors -- */
	cfg = sd_config_new();
	CHECK(cfg != NULL, "sd_config_new");
	r = sd_config_set(cfg, "no_such_option", "1");
	CHECK(r == SD_ERR_CONFIG && strstr(sd_last_error(), "no_such_option"),
			"unknown option -> SD_ERR_CONFIG, detail \"%s\"", sd_last_error());
	CHECK(sd_config_set(cfg, "mode", "sometimes") == SD_ERR_CONFIG, "bad mode value refused");
	CHECK(sd_config_set(NULL, "mode", "both") == SD_ERR_NULL_PARAMETER, "NULL config refused");
	CHECK(sd_config_set(cfg, NULL, "x") == SD_ERR_NULL_PARAMETER, "NULL option name refused");
	snprintf(opt, sizeof(opt), "key=%s/missing.key;cert=%s/proxy1.crt", keydir, keydir);
	CHECK(sd_config_set(cfg, "rsa_key", opt) == SD_OK, "rsa_key option accepted (file checked later)");
	r = sd_ctx_new(cfg, &bad_ctx);
	CHECK(r == SD_ERR_KEY_FILE && bad_ctx == NULL,
			"missing key file -> SD_ERR_KEY_FILE (%u), detail \"%s\"", r, sd_last_error());
	sd_config_free(cfg);
	sd_config_free(NULL);

	/* -- a working proxy context: proxy1's RSA key and the PSK, identity proxy1.example.net -- */
	cfg = sd_config_new();
	snprintf(opt, sizeof(opt), "key=%s/proxy1.key;cert=%s/proxy1.crt", keydir, keydir);
	r = sd_config_set(cfg, "rsa_key", opt);
	snprintf(opt, sizeof(opt), "id=text:psk-proxy1;key=%s/psk-proxy1.hex", keydir);
	r |= sd_config_set(cfg, "psk", opt);
	r |= sd_config_set(cfg, "identity", "proxy1.example.net");
	r |= sd_config_set(cfg, "mode", "both");
	r |= sd_config_set(cfg, "cache_capacity", "64");
	CHECK(r == SD_OK, "options set");
	r = sd_ctx_new(cfg, &ctx);
	sd_config_free(cfg);
	CHECK(r == SD_OK && ctx != NULL, "sd_ctx_new (%s)", sd_last_error());
	if(!ctx) {
		printf("%d passed, %d failed\n", passed, failed);
		return 1;
	}

	/* -- key loading warnings: proxy1.key is readable by others (mode 0644) -- */
	{
		size_t n = sd_ctx_warning_count(ctx), i;
		int named = 0;
		for(i = 0; i < n; i++) {
			if(sd_ctx_warning(ctx, i, &v) == SD_OK) {
				printf("# warning: %.*s\n", (int)v.len, (const char *)v.ptr);
				named |= memmem(v.ptr, v.len, "proxy1.key", 10) != NULL;
			}
		}
		CHECK(n >= 1 && named, "a key file others may read gives a warning naming it (%zu)", n);
		CHECK(sd_ctx_warning(ctx, n, &v) == SD_ERR_INVALID_ARGUMENT && v.len == 0,
				"warning index out of range refused");
	}

	/* -- decisions -- */
	sd_msg m_offer = msg_of("call-a@example.org", "tag-a", "", "INVITE", 0, SMIME_AUTH, offer);
	CHECK(sd_should_decrypt(ctx, &m_offer) == SD_OK, "offer for callee+proxy1: should decrypt");
	sd_msg m_other = msg_of("call-x@example.org", "tag-x", "", "INVITE", 0, SMIME_AUTH, other);
	CHECK(sd_should_decrypt(ctx, &m_other) == SD_NOT_FOR_ME,
			"offer for callee+proxy2 only: SD_NOT_FOR_ME");
	sd_msg m_plain = msg_of("call-p@example.org", "tag-p", "", "INVITE", 0, "application/sdp", sdp);
	CHECK(sd_should_decrypt(ctx, &m_plain) == SD_NOT_ENCRYPTED, "plain SDP: SD_NOT_ENCRYPTED");
	sd_msg m_trunc = msg_of("call-t@example.org", "tag-t", "", "INVITE", 0, SMIME_AUTH, truncated);
	r = sd_unwrap_body(ctx, &m_trunc, &plain);
	CHECK(r == SD_ERR_DER && plain == NULL, "truncated DER -> SD_ERR_DER (%u), no result", r);
	m_offer.disclose_to = s("proxy2.example.net;cid=\"sdp@example.org\"");
	CHECK(sd_should_decrypt(ctx, &m_offer) == SD_NOT_FOR_ME,
			"Disclose-To names another proxy: SD_NOT_FOR_ME");
	m_offer.disclose_to = s("proxy1.example.net");
	CHECK(sd_should_decrypt(ctx, &m_offer) == SD_OK, "Disclose-To names proxy1: SD_OK");
	m_offer.disclose_to = s("proxy1.example.net;cid=");
	r = sd_should_decrypt(ctx, &m_offer);
	CHECK(r == SD_ERR_REQUEST_HEADER || r == SD_ERR_CONTENT_ID_NOT_FOUND,
			"hostile Disclose-To -> error %u (%s)", r, sd_strerror(r));
	m_offer.disclose_to = s("");

	/* -- null and range checks -- */
	CHECK(sd_should_decrypt(NULL, &m_offer) == SD_ERR_NULL_PARAMETER, "NULL ctx refused");
	CHECK(sd_unwrap_body(ctx, NULL, &plain) == SD_ERR_NULL_PARAMETER, "NULL msg refused");
	CHECK(sd_unwrap_body(ctx, &m_offer, NULL) == SD_ERR_NULL_PARAMETER, "NULL out refused");
	sd_msg m_nullbody = m_offer;
	m_nullbody.body.ptr = NULL; /* length stays: invalid */
	CHECK(sd_unwrap_body(ctx, &m_nullbody, &plain) == SD_ERR_NULL_PARAMETER,
			"NULL body pointer with a length refused");

	/* -- the offer: unwrap with proxy1's key, read the SDP -- */
	r = sd_unwrap_body(ctx, &m_offer, &plain);
	CHECK(r == SD_OK && plain, "offer unwrapped (%u %s)", r, sd_last_error());
	if(plain) {
		CHECK(sd_plain_count(plain) == 1, "one part");
		CHECK(sd_plain_get(plain, 0, SD_FIELD_BODY, &v) == SD_OK && v.len == sdp.len
						&& memcmp(v.ptr, sdp.data, sdp.len) == 0,
				"plaintext equals the SDP byte for byte (%zu bytes)", v.len);
		CHECK(field_eq(plain, SD_FIELD_CONTENT_TYPE, "application/sdp"), "content type application/sdp");
		CHECK(field_eq(plain, SD_FIELD_MEDIA_ADDR, "192.0.2.10"), "media address 192.0.2.10");
		CHECK(field_eq(plain, SD_FIELD_MEDIA_PORT, "49170"), "media port 49170");
		CHECK(field_eq(plain, SD_FIELD_KEY_SOURCE, "wrapped"), "key source: wrapped");
		CHECK(field_eq(plain, SD_FIELD_KEY_LABEL, "proxy1"), "key label: proxy1");
		CHECK(field_eq(plain, SD_FIELD_GENERATION, "1") && sd_plain_generation(plain) == 1,
				"generation 1");
		CHECK(sd_plain_get(plain, 0, SD_FIELD_CRYPTO, &v) == SD_OK
						&& v.len > 20 && memcmp(v.ptr, "1 AES_CM_128_HMAC_SHA1_80", 25) == 0,
				"a=crypto attribute available to the script");
		CHECK(sd_plain_get(plain, 5, SD_FIELD_BODY, &v) == SD_ERR_INVALID_ARGUMENT && v.len == 0,
				"part index out of range -> SD_ERR_INVALID_ARGUMENT");
		CHECK(sd_plain_get(plain, 0, 77, &v) == SD_ERR_INVALID_ARGUMENT, "unknown field refused");
	}
	sd_plain_free(plain);
	plain = NULL;
	sd_plain_free(NULL);

	/* -- every media stream of a multi-stream SDP -- */
	CHECK(names_ok(sd_field_count(), sd_field_name, "body")
					&& names_ok(sd_media_field_count(), sd_media_field_name, "kind")
					&& names_ok(sd_crypto_field_count(), sd_crypto_field_name, "tag")
					&& names_ok(sd_seal_field_count(), sd_seal_field_name, "body"),
			"field name tables: %u sd_field, %u sd_media_field, %u sd_crypto_field, "
			"%u sd_seal_field names, distinct, NULL past the end",
			sd_field_count(), sd_media_field_count(), sd_crypto_field_count(),
			sd_seal_field_count());
	CHECK(field_by_name(sd_field_count(), sd_field_name, "media_addr") == SD_FIELD_MEDIA_ADDR
					&& field_by_name(sd_field_count(), sd_field_name, "crypto") == SD_FIELD_CRYPTO
					&& field_by_name(sd_seal_field_count(), sd_seal_field_name, "sealing")
							== SD_SEAL_SEALING
					&& field_by_name(sd_media_field_count(), sd_media_field_name, "rtcp_port")
							== SD_MEDIA_FIELD_RTCP_PORT
					&& field_by_name(sd_crypto_field_count(), sd_crypto_field_name, "suite")
							== SD_CRYPTO_FIELD_SUITE,
			"names map to the header's constants (media_addr, crypto, rtcp_port, suite)");
	sd_msg m_media = msg_of("call-m@example.org", "tag-m", "", "INVITE", 0, SMIME_AUTH, media);
	r = sd_unwrap_body(ctx, &m_media, &plain);
	CHECK(r == SD_OK && plain, "multi-stream offer unwrapped (%u)", r);
	if(plain) {
		CHECK(sd_plain_get(plain, 0, SD_FIELD_BODY, &v) == SD_OK && v.len == media_sdp.len
						&& memcmp(v.ptr, media_sdp.data, v.len) == 0,
				"its plaintext is tests/data/sip/multistream.sdp");
		check_media(plain);
	}
	sd_plain_free(plain);
	plain = NULL;
	sd_msg m_bad = msg_of("call-s@example.org", "tag-s", "", "INVITE", 0, SMIME_AUTH, badsdp);
	r = sd_unwrap_body(ctx, &m_bad, &plain);
	CHECK(r == SD_OK && plain, "offer with a malformed SDP still decrypts (%u)", r);
	if(plain) {
		CHECK(field_eq(plain, SD_FIELD_SDP_ERROR, "malformed SDP line 6")
						&& sd_plain_media_count(plain, 0) == 0
						&& sd_plain_get(plain, 0, SD_FIELD_MEDIA_COUNT, &v) == SD_ERR_INVALID_ARGUMENT
						&& sd_plain_get(plain, 0, SD_FIELD_MEDIA_ADDR, &v) == SD_ERR_INVALID_ARGUMENT,
				"malformed SDP: SD_FIELD_SDP_ERROR names line 6, no streams, no media count");
	}
	sd_plain_free(plain);
	plain = NULL;

	/* -- fork: a child reads the key the parent cached, and caches one the parent reads -- */
	fflush(stdout);
	pid = fork();
	if(pid == 0) {
		sd_msg m = msg_of("call-a@example.org", "tag-a", "to-a", "INVITE", 200, SMIME_ENC, indialog);
		char src[32] = "";
		uint32_t g = 0;
		int ok = unwrap(ctx, &m, &g, src, sizeof(src)) == SD_OK && g == 1
				&& strcmp(src, "cache") == 0;
		sd_msg mb = msg_of("call-b@example.org", "tag-b", "", "INVITE", 0, SMIME_AUTH, offer_b);
		ok = ok && unwrap(ctx, &mb, NULL, NULL, 0) == SD_OK;
		_exit(ok ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			"child process (pid %d) decrypted the 200 OK with the key the parent cached, and cached dialog B",
			(int)pid);
	sd_msg m_b = msg_of("call-b@example.org", "tag-b", "to-b", "MESSAGE", 0, SMIME_ENC, indialog_b);
	r = unwrap(ctx, &m_b, &gen, source, sizeof(source));
	CHECK(r == SD_OK && strcmp(source, "cache") == 0,
			"parent decrypted dialog B's MESSAGE with the key the child cached (%u)", r);
	r = sd_unwrap_body(ctx, &m_b, &plain);
	CHECK(r == SD_OK && field_eq(plain, SD_FIELD_CONTENT_TYPE, "application/octet-stream")
					&& sd_plain_media_count(plain, 0) == 0
					&& sd_plain_get(plain, 0, SD_FIELD_MEDIA_COUNT, &v) == SD_ERR_INVALID_ARGUMENT
					&& sd_plain_get(plain, 0, SD_FIELD_SDP_ERROR, &v) == SD_ERR_INVALID_ARGUMENT,
			"a part that is not SDP (application/octet-stream) has no streams, no media count, "
			"no SDP error (%u)",
			r);
	sd_plain_free(plain);
	plain = NULL;

	/* -- an AES-CBC dialog: its unauthenticated in-dialog bodies are refused unread -- */
	sd_msg m_offer_c = msg_of("call-c@example.org", "tag-c", "", "INVITE", 0, SMIME_ENV, offer_c);
	CHECK(unwrap(ctx, &m_offer_c, NULL, NULL, 0) == SD_OK, "CBC offer (EnvelopedData) opens");
	sd_msg m_c = msg_of("call-c@example.org", "tag-c", "to-c", "MESSAGE", 0, SMIME_ENC, indialog_c);
	r = sd_unwrap_body(ctx, &m_c, &plain);
	CHECK(r == SD_ERR_UNAUTHENTICATED && plain == NULL,
			"CBC EncryptedData in the dialog refused without decrypting (%u)", r);

	/* -- rotation -- */
	sd_msg m_rot_out = msg_of("call-a@example.org", "tag-a", "", "INVITE", 0, SMIME_AUTH, rotated);
	r = sd_rotate(ctx, &m_rot_out, &gen);
	CHECK(r == SD_ERR_ROTATION_REJECTED, "rotation from outside the dialog (no To tag) rejected (%u)", r);
	r = sd_unwrap_body(ctx, &m_rot_out, &plain);
	CHECK(r == SD_ERR_DIALOG_KEY_EXISTS && plain == NULL,
			"a new key for a cached dialog in an initial request is refused (%u)", r);
	sd_msg m_rot = msg_of("call-a@example.org", "tag-a", "to-a", "INVITE", 0, SMIME_AUTH, rotated);
	gen = 0;
	r = sd_rotate(ctx, &m_rot, &gen);
	CHECK(r == SD_OK && gen == 2, "re-INVITE in the dialog rotates the key: generation %u", gen);
	pid = fork();
	if(pid == 0) {
		sd_msg m = msg_of("call-a@example.org", "tag-a", "to-a", "MESSAGE", 0, SMIME_ENC, rotated_in);
		uint32_t g = 0;
		int ok = unwrap(ctx, &m, &g, NULL, 0) == SD_OK && g == 2;
		sd_msg old = msg_of("call-a@example.org", "tag-a", "to-a", "MESSAGE", 0, SMIME_ENC, indialog);
		ok = ok && unwrap(ctx, &old, NULL, NULL, 0) == SD_ERR_DECRYPT;
		_exit(ok ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			"child decrypts with the rotated key (gen 2); a body under the old key fails with SD_ERR_DECRYPT");

	/* -- requests the callee sends carry the caller's tag in To -- */
	sd_msg m_callee = msg_of("call-a@example.org", "to-a", "tag-a", "MESSAGE", 0, SMIME_ENC, rotated_in);
	r = unwrap(ctx, &m_callee, &gen, source, sizeof(source));
	CHECK(r == SD_OK && gen == 2 && strcmp(source, "cache") == 0,
			"a MESSAGE from the callee (caller's tag in To) finds the dialog key (%u)", r);

	/* -- a From value the caller has not parsed (sd_msg.from): the library reads the tag -- */
	sd_msg m_raw = msg_of("call-a@example.org", "", "to-a", "MESSAGE", 0, SMIME_ENC, rotated_in);
	m_raw.from = s("\"Alice <x>\" <sip:alice@example.org;transport=udp> ;x=\"y;tag=z\";TAG=tag-a");
	r = unwrap(ctx, &m_raw, &gen, source, sizeof(source));
	CHECK(r == SD_OK && gen == 2 && strcmp(source, "cache") == 0,
			"a raw From value gives the dialog's tag: decrypted from the cache (%u)", r);
	m_raw.from = s("\"Alice <sip:alice@example.org>;tag=tag-a");
	r = unwrap(ctx, &m_raw, NULL, NULL, 0);
	CHECK(r == SD_ERR_INVALID_MESSAGE,
			"an unparseable raw From (open quote) has no tag: SD_ERR_INVALID_MESSAGE (%u)", r);
	m_raw.from = s("<sip:mallory@example.org>;tag=tag-m");
	m_raw.from_tag = s("tag-a");
	r = unwrap(ctx, &m_raw, NULL, NULL, 0);
	CHECK(r != SD_OK, "a raw From wins over from_tag: another dialog, not decrypted (%u)", r);

	/* -- dialog end in a child removes the key for everyone -- */
	pid = fork();
	if(pid == 0)
		_exit(sd_dialog_end(ctx, s("call-a@example.org"), s("tag-a")) == SD_OK ? 0 : 1);
	waitpid(pid, &status, 0);
	sd_msg m_after = msg_of("call-a@example.org", "tag-a", "to-a", "BYE", 0, SMIME_ENC, rotated_in);
	r = sd_should_decrypt(ctx, &m_after);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0 && r == SD_NOT_FOR_ME,
			"after dialog end (in a child) the dialog's EncryptedData is no longer for us (%u)", r);
	m_after.disclose_to = s("proxy1.example.net");
	r = sd_should_decrypt(ctx, &m_after);
	CHECK(r == SD_ERR_NO_DIALOG_KEY, "...and explicitly asked, SD_ERR_NO_DIALOG_KEY (%u)", r);
	CHECK(sd_dialog_end(ctx, s(""), s("tag-a")) == SD_ERR_INVALID_MESSAGE,
			"dialog end without Call-ID refused");

	/* -- pinholes: off without pinhole_agent, every entry point says so -- */
	{
		uint32_t nflows = 7;
		sd_pinholes *ph = (sd_pinholes *)1;
		CHECK(sd_pinhole_enabled(ctx) == 0 && sd_pinhole_enabled(NULL) == 0,
				"sd_pinhole_enabled: 0 without pinhole_agent");
		CHECK(sd_pinhole_open(ctx, &m_after, NULL, &nflows) == SD_ERR_PINHOLES_OFF
						&& nflows == 0,
				"sd_pinhole_open without pinhole_agent: SD_ERR_PINHOLES_OFF, 0 flows");
		CHECK(sd_pinhole_close(ctx, &m_after, &nflows) == SD_ERR_PINHOLES_OFF
						&& sd_pinhole_refresh(ctx) == SD_ERR_PINHOLES_OFF
						&& sd_pinholes_snapshot(ctx, &ph) == SD_ERR_PINHOLES_OFF && ph == NULL,
				"sd_pinhole_close / _refresh / sd_pinholes_snapshot: SD_ERR_PINHOLES_OFF");
		CHECK(sd_pinhole_open(ctx, &m_after, NULL, NULL) == SD_ERR_NULL_PARAMETER,
				"sd_pinhole_open with a NULL out pointer refused");
		CHECK(sd_pinhole_field_count() == 8
						&& strcmp(sd_pinhole_field_name(SD_PINHOLE_FIELD_FLOWS), "flows") == 0
						&& strcmp(sd_pinhole_field_name(SD_PINHOLE_FIELD_SOURCE), "source") == 0
						&& sd_pinhole_field_name(8) == NULL && sd_pinholes_count(NULL) == 0,
				"sd_pinhole_field names (8, 'flows', 'source'), NULL past the end");
		sd_pinholes_free(NULL);
		sd_config *pc = sd_config_new();
		CHECK(sd_config_set(pc, "pinhole_agent", "not an address") == SD_ERR_CONFIG
						&& sd_config_set(pc, "pinhole_on_offer", "1") == SD_OK
						&& sd_config_set(pc, "pinhole_key", "id=1") == SD_ERR_CONFIG,
				"pinhole options checked as they are set");
		sd_config_free(pc);
	}

	/* -- recording: off without pinhole_agent/record_recorder, every entry point says so -- */
	{
		sd_recordings *rs = (sd_recordings *)1;
		CHECK(sd_record_enabled(ctx) == 0 && sd_record_enabled(NULL) == 0,
				"sd_record_enabled: 0 without a recorder");
		CHECK(sd_record_start(ctx, &m_after) == SD_ERR_RECORDING_OFF
						&& sd_record_stop(ctx, &m_after) == SD_ERR_RECORDING_OFF
						&& sd_recordings_snapshot(ctx, &rs) == SD_ERR_RECORDING_OFF
						&& rs == NULL,
				"sd_record_start / _stop / sd_recordings_snapshot: SD_ERR_RECORDING_OFF");
		CHECK(sd_record_start(NULL, &m_after) == SD_ERR_NULL_PARAMETER,
				"sd_record_start with a NULL context refused");
		CHECK(sd_recording_field_count() == 9
						&& strcmp(sd_recording_field_name(SD_RECORDING_FIELD_DIALOG), "dialog") == 0
						&& strcmp(sd_recording_field_name(SD_RECORDING_FIELD_OWNER), "owner") == 0
						&& sd_recording_field_name(9) == NULL && sd_recordings_count(NULL) == 0,
				"sd_recording_field names (9, 'dialog', 'owner'), NULL past the end");
		sd_recordings_free(NULL);
		sd_config *rc = sd_config_new();
		CHECK(sd_config_set(rc, "record_recorder", "nowhere") == SD_ERR_CONFIG
						&& sd_config_set(rc, "record", "2") == SD_ERR_CONFIG
						&& sd_config_set(rc, "record_kek", "id=text:k;key=/k") == SD_ERR_CONFIG
						&& sd_config_set(rc, "record", "1") == SD_OK,
				"record options checked as they are set (record_kek needs a label)");
		sd_config_free(rc);
	}

	sd_msg m_bye_b = msg_of("call-b@example.org", "to-b", "tag-b", "BYE", 0, "", sdp);
	m_bye_b.body.len = 0;
	CHECK(sd_dialog_end_msg(ctx, &m_bye_b) == SD_OK
					&& sd_should_decrypt(ctx, &m_b) == SD_NOT_FOR_ME,
			"a BYE from the callee ends dialog B (sd_dialog_end_msg)");
	sd_msg m_offer_b = msg_of("call-b@example.org", "tag-b", "", "INVITE", 0, SMIME_AUTH, offer_b);
	CHECK(unwrap(ctx, &m_offer_b, NULL, NULL, 0) == SD_OK, "dialog B offered again: key cached anew");

	/* -- reload keeps the cache -- */
	CHECK(sd_reload(ctx) == SD_OK, "sd_reload");
	CHECK(unwrap(ctx, &m_b, NULL, NULL, 0) == SD_OK, "dialog B still decrypts after reload");

	/* -- stats, summed across processes, read by name from the library's table -- */
	CHECK(sd_stat_count() > 20 && sd_stat_name(sd_stat_count()) == NULL
					&& sd_stat_doc(0) != NULL && sd_stat_doc(0)[0] != '\0',
			"%zu statistics, each named and documented, none past the end",
			sd_stat_count());
	printf("# stats:");
	for(size_t i = 0; i < sd_stat_count(); i++)
		printf(" %s=%llu", sd_stat_name(i), (unsigned long long)stat(ctx, sd_stat_name(i)));
	printf("\n");
	CHECK(stat(ctx, "decrypted") >= 6, "decryptions in children are counted too (%llu)",
			(unsigned long long)stat(ctx, "decrypted"));
	CHECK(stat(ctx, "rotations") == 1 && stat(ctx, "dialogs_ended") == 2
					&& stat(ctx, "reloads") == 1 && stat(ctx, "cache_capacity") == 64,
			"rotation, dialog end, reload and capacity counted");
	{
		uint64_t v = 1;
		CHECK(sd_stat_value(ctx, sd_stat_count(), &v) == SD_ERR_INVALID_ARGUMENT && v == 0,
				"sd_stat_value past the end: SD_ERR_INVALID_ARGUMENT, value 0");
	}

	/* -- cluster replication: two nodes in this process, one cluster key -- */
	{
		char keyfile[] = "/tmp/sipsd-harness-cluster-XXXXXX";
		sd_ctx *na = NULL, *nb = NULL;
		uint8_t buf[SD_CLUSTER_MSG_MAX];
		size_t len = 1;
		sd_cluster_rx rx;
		sd_cluster_self_info self;
		sd_cluster_peer_info peer, rx_peer;
		int fd = mkstemp(keyfile);
		const char *hex = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
		/* mkstemp makes the file 0600, as the library wants key files */
		CHECK(fd >= 0 && write(fd, hex, strlen(hex)) == (ssize_t)strlen(hex) && close(fd) == 0,
				"cluster key file %s", keyfile);
		for(int n = 0; n < 2; n++) {
			cfg = sd_config_new();
			snprintf(opt, sizeof(opt), "key=%s/proxy1.key;cert=%s/proxy1.crt", keydir, keydir);
			r = sd_config_set(cfg, "rsa_key", opt);
			snprintf(opt, sizeof(opt), "id=text:sipsd-cluster;key=%s", keyfile);
			r |= sd_config_set(cfg, "cluster_key", opt);
			r |= sd_config_set(cfg, "cluster_node", n == 0 ? "na" : "nb");
			r |= sd_ctx_new(cfg, n == 0 ? &na : &nb);
			sd_config_free(cfg);
		}
		CHECK(r == SD_OK && na && nb, "two contexts with cluster_key and cluster_node (%s)",
				sd_last_error());
		CHECK(sd_cluster_enabled(na) == 1 && sd_cluster_enabled(ctx) == 0
						&& sd_cluster_enabled(NULL) == 0,
				"sd_cluster_enabled: 1 with a cluster key, 0 without, 0 for NULL");
		CHECK(sd_cluster_take(ctx, buf, sizeof(buf), &len) == SD_ERR_CLUSTER_OFF && len == 0,
				"sd_cluster_take without a cluster key: SD_ERR_CLUSTER_OFF");
		CHECK(strstr(sd_cluster_content_type(), "smime-type=authEnveloped-data") != NULL,
				"content type %s", sd_cluster_content_type());
		sd_msg m_na = msg_of("call-n@example.org", "tag-n", "", "INVITE", 0, SMIME_AUTH, offer);
		CHECK(unwrap(na, &m_na, &gen, source, sizeof(source)) == SD_OK && gen == 1,
				"node na read an offer (gen 1, %s)", source);
		CHECK(sd_cluster_take(na, buf, 100, &len) == SD_ERR_INVALID_ARGUMENT && len == 0,
				"a buffer smaller than SD_CLUSTER_MSG_MAX refused, nothing taken");
		r = sd_cluster_take(na, buf, sizeof(buf), &len);
		CHECK(r == SD_OK && len > 0 && len <= SD_CLUSTER_MSG_MAX,
				"na sealed its key change: %zu bytes of base64", len);
		sd_str body = {buf, len};
		r = sd_cluster_receive(nb, body, s("sip:na@127.0.0.1:5090"), &rx);
		CHECK(r == SD_OK && rx.kind == SD_CLUSTER_UPDATE && rx.stored == 1
						&& strcmp(rx.node, "na") == 0,
				"nb applied it: one key stored, from node %s (%u)", rx.node, r);
		r = sd_cluster_receive(nb, body, s("sip:na@127.0.0.1:5090"), &rx);
		CHECK(r == SD_ERR_CLUSTER_REPLAY, "the same message again: SD_ERR_CLUSTER_REPLAY (%u)", r);
		buf[len / 2] = buf[len / 2] == 'A' ? 'B' : 'A';
		r = sd_cluster_receive(nb, body, s(""), &rx);
		CHECK(r == SD_ERR_CLUSTER_SEAL, "one base64 character changed: SD_ERR_CLUSTER_SEAL (%u)", r);
		size_t before = len;
		CHECK(sd_cluster_take(na, buf, sizeof(buf), &len) == SD_OK && len == 0,
				"nothing more to send after the %zu-byte message", before);
		int info_ok = sd_cluster_info(nb, &self) == SD_OK && strcmp(self.node, "nb") == 0
				&& self.peers == 1 && sd_cluster_peer(nb, 0, &peer) == SD_OK
				&& strcmp(peer.node, "na") == 0 && strcmp(peer.addr, "sip:na@127.0.0.1:5090") == 0
				&& peer.keys == 1;
		CHECK(info_ok && sd_cluster_peer(nb, 1, &rx_peer) == SD_ERR_INVALID_ARGUMENT,
				"nb knows one peer: %s at %s, %llu key", peer.node, peer.addr,
				(unsigned long long)peer.keys);
		{
			size_t cursor = 0;
			uint32_t more = 1;
			unsigned parts = 0;
			while(more && sd_cluster_sync_next(na, &cursor, &more, buf, sizeof(buf), &len) == SD_OK)
				parts++;
			CHECK(parts >= 1 && !more, "na's full sync: %u part(s)", parts);
		}
		CHECK(stat(nb, "cluster_in") == 1 && stat(nb, "cluster_replays") == 1
						&& stat(nb, "cluster_bad_seal") == 1 && stat(na, "cluster_out") >= 2,
				"counted: nb in 1, replays 1, bad seal 1; na out %llu",
				(unsigned long long)stat(na, "cluster_out"));
		sd_ctx_free(na);
		sd_ctx_free(nb);
		unlink(keyfile);
	}

	/* -- the edge role: sd_seal / sd_sealed / sd_open -- */
	{
		sd_parties to_bob = {s("alice@example.net"), s("bob@example.net"), s("1")};
		sd_parties to_carol = {s("alice@example.net"), s("carol@example.net"), s("1")};
		sd_msg m_invite = msg_of("edge-1@h", "edge-a", "", "INVITE", 0, "application/sdp", sdp);
		sd_sealed *sealed = (sd_sealed *)1;
		sd_ctx *edge = edge_ctx(keydir, "reject"), *edge_clear = edge_ctx(keydir, "clear");
		sd_str ct = {0}, body = {0}, d = {0};

		r = sd_seal(ctx, &m_invite, &to_bob, &sealed);
		CHECK(r == SD_ERR_NOT_EDGE && sealed == NULL, "sd_seal on a proxy context: SD_ERR_NOT_EDGE");
		CHECK(sd_open(ctx, &m_offer, &plain) == SD_ERR_NOT_EDGE && plain == NULL,
				"sd_open on a proxy context: SD_ERR_NOT_EDGE");
		CHECK(edge && edge_clear, "edge contexts (role=edge, unsealable=reject and clear)");
		r = sd_seal(edge, &m_invite, &to_carol, &sealed);
		CHECK(r == SD_ERR_NO_PEER_CERT && sealed == NULL,
				"no certificate for carol, unsealable=reject: %s (%u)", sd_strerror(r), r);
		r = sd_seal(edge_clear, &m_invite, &to_carol, &sealed);
		CHECK(r == SD_SENT_CLEAR && sealed == NULL,
				"no certificate for carol, unsealable=clear: %s (%u)", sd_strerror(r), r);
		CHECK(sd_seal(edge, NULL, &to_bob, &sealed) == SD_ERR_NULL_PARAMETER
						&& sd_seal(edge, &m_invite, NULL, &sealed) == SD_ERR_NULL_PARAMETER
						&& sd_seal(edge, &m_invite, &to_bob, NULL) == SD_ERR_NULL_PARAMETER,
				"sd_seal: NULL message, parties or out refused");
		r = sd_seal(edge, &m_invite, &to_bob, &sealed);
		CHECK(r == SD_OK && sealed, "the INVITE's SDP sealed for bob and proxy1 (%u)", r);
		CHECK(sd_sealed_get(sealed, SD_SEAL_CONTENT_TYPE, &ct) == SD_OK
						&& memmem(ct.ptr, ct.len, "authEnveloped-data", 18)
						&& sd_sealed_get(sealed, SD_SEAL_DISPOSITION, &d) == SD_OK
						&& d.len == strlen("session; handling=required")
						&& sd_sealed_generation(sealed) == 1,
				"sealed: AuthEnvelopedData, Content-Disposition session;handling=required, generation 1");
		CHECK(sd_sealed_get(sealed, SD_SEAL_TRANSFER_ENCODING, &v) == SD_ERR_INVALID_ARGUMENT
						&& v.len == 0 && sd_sealed_get(sealed, 99, &v) == SD_ERR_INVALID_ARGUMENT,
				"no Content-Transfer-Encoding for binary; an unknown field refused");
		if(sd_sealed_get(sealed, SD_SEAL_BODY, &body) == SD_OK) {
			file_buf fb = {(uint8_t *)body.ptr, body.len};
			char ctype[256];
			snprintf(ctype, sizeof(ctype), "%.*s", (int)ct.len, (const char *)ct.ptr);
			sd_msg m_sealed = msg_of("edge-1@h", "edge-a", "", "INVITE", 0, ctype, fb);
			r = sd_unwrap_body(ctx, &m_sealed, &plain);
		}
		CHECK(r == SD_OK && plain && sd_plain_get(plain, 0, SD_FIELD_BODY, &v) == SD_OK
						&& v.len == sdp.len && memcmp(v.ptr, sdp.data, sdp.len) == 0
						&& field_eq(plain, SD_FIELD_SIGNATURE, "none"),
				"the proxy context (proxy1) opens what the edge sealed: the SDP, unsigned");
		sd_plain_free(plain);
		plain = NULL;
		sd_sealed_free(sealed);
		sd_sealed_free(NULL);
		CHECK(sd_sealed_generation(NULL) == 0 && sd_sealed_get(NULL, 0, &v) == SD_ERR_NULL_PARAMETER,
				"sd_sealed_free/generation/get accept NULL");
		sd_ctx_free(edge);
		sd_ctx_free(edge_clear);
	}

	sd_ctx_free(ctx);
	sd_ctx_free(NULL);
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
