/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <json-glib/json-glib.h>

#include "codechat-error.h"

G_BEGIN_DECLS

/* PROTOCOL.md, "Transport" and "Names and sizes" */
#define CODECHAT_SUBPROTOCOL	       "codechat.v1"
#define CODECHAT_WS_PATH	       "/v1/ws"
#define CODECHAT_MAX_NICK	       32
#define CODECHAT_MAX_ROOM	       64
#define CODECHAT_MAX_TEXT	       65536
#define CODECHAT_MAX_FILENAME	       255
#define CODECHAT_MAX_REF	       64
#define CODECHAT_MAX_LANG	       32
#define CODECHAT_MAX_PAGE	       500
#define CODECHAT_DEFAULT_PAGE	       50
#define CODECHAT_DEFAULT_RATE	       20
#define CODECHAT_DEFAULT_BURST	       50
#define CODECHAT_DEFAULT_MAX_FRAME     (256 * 1024)
#define CODECHAT_DEFAULT_KEEPALIVE     30
#define CODECHAT_DEFAULT_HELLO_TIMEOUT 10
/* 1013, "try again later": overloaded or too slow a reader; libsoup has no name for it */
#define CODECHAT_CLOSE_TRY_AGAIN_LATER 1013

typedef enum {
	CODECHAT_KIND_TEXT,
	CODECHAT_KIND_CODE,
	CODECHAT_KIND_ACTION,
} CodechatKind;

const gchar *
codechat_kind_to_string(CodechatKind kind);
gboolean
codechat_kind_from_string(const gchar *str, CodechatKind *kind);

/* validation of every rule in "Names and sizes"; errors carry the
 * protocol code that the daemon answers with */
gboolean
codechat_validate_nick(const gchar *nick, GError **error);
gboolean
codechat_validate_room(const gchar *room, GError **error);
gboolean
codechat_validate_text(const gchar *text, gsize max_text, GError **error);
gboolean
codechat_validate_filename(const gchar *filename, GError **error);
gboolean
codechat_validate_lang(const gchar *lang, GError **error);
gboolean
codechat_validate_ref(const gchar *ref, GError **error);
gchar *
codechat_nick_fold(const gchar *nick);
gboolean
codechat_nick_equal(const gchar *a, const gchar *b);

gchar *
codechat_timestamp_format(gint64 unix_us);
gboolean
codechat_timestamp_parse(const gchar *str, gint64 *unix_us);

/* a chat message as it is stored and fanned out */
typedef struct {
	gint ref_count;
	gchar *room; /* (owned) (nullable) NULL for a direct message */
	gchar *to;   /* (owned) (nullable) recipient of a direct message */
	gchar *from; /* (owned) */
	guint64 id;  /* 0 until the store assigned one */
	gint64 ts;   /* unix microseconds, server time */
	CodechatKind kind;
	gchar *text;	 /* (owned) */
	gchar *lang;	 /* (owned) (nullable) */
	gchar *filename; /* (owned) (nullable) */
} CodechatMessage;

CodechatMessage *
codechat_message_new(void);
CodechatMessage *
codechat_message_ref(CodechatMessage *msg);
void
codechat_message_unref(CodechatMessage *msg);
void
codechat_message_build(const CodechatMessage *msg, JsonBuilder *builder);
gchar *
codechat_message_serialize(const CodechatMessage *msg, const gchar *ref);
CodechatMessage *
codechat_message_from_json(JsonObject *obj, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(CodechatMessage, codechat_message_unref)

/* a client request, parsed and checked */
typedef enum {
	CODECHAT_REQUEST_HELLO,
	CODECHAT_REQUEST_JOIN,
	CODECHAT_REQUEST_PART,
	CODECHAT_REQUEST_SAY,
	CODECHAT_REQUEST_HISTORY,
	CODECHAT_REQUEST_WHO,
	CODECHAT_REQUEST_ROOMS,
	CODECHAT_REQUEST_PING,
} CodechatRequestType;

typedef struct {
	CodechatRequestType type;
	gchar *ref;	 /* (owned) (nullable) */
	gchar *nick;	 /* (owned) (nullable) hello */
	gchar *token;	 /* (owned) (nullable) hello */
	gchar *client;	 /* (owned) (nullable) hello */
	gchar *room;	 /* (owned) (nullable) join, part, say, history, who */
	gchar *to;	 /* (owned) (nullable) say */
	gchar *with;	 /* (owned) (nullable) history */
	gchar *text;	 /* (owned) (nullable) say */
	gchar *lang;	 /* (owned) (nullable) say */
	gchar *filename; /* (owned) (nullable) say */
	CodechatKind kind;
	gboolean has_since;
	gboolean has_before;
	gboolean has_after;
	guint64 since;
	guint64 before;
	guint64 after;
	guint limit; /* 0 when not given */
} CodechatRequest;

void
codechat_request_free(CodechatRequest *req);
CodechatRequest *
codechat_request_parse(JsonParser *parser,
		       const gchar *data,
		       gsize len,
		       gsize max_text,
		       gchar **ref,
		       GError **error);
CodechatRequest *
codechat_request_parse_full(JsonParser *parser,
			    const gchar *data,
			    gsize len,
			    gsize max_text,
			    gchar **ref,
			    gint *type,
			    GError **error);
const gchar *
codechat_request_type_to_string(CodechatRequestType type);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(CodechatRequest, codechat_request_free)

/* server replies */
gchar *
codechat_builder_to_string(JsonBuilder *builder);
gchar *
codechat_error_frame(const GError *error, const gchar *ref);

G_END_DECLS
