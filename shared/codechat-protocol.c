/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-shared"

#include "config.h"

#include <string.h>
#include <time.h>

#include "codechat-protocol.h"

static const gchar *const kind_names[] = {
    [CODECHAT_KIND_TEXT] = "text",
    [CODECHAT_KIND_CODE] = "code",
    [CODECHAT_KIND_ACTION] = "action",
};

const gchar *
codechat_kind_to_string(CodechatKind kind)
{
	if ((gsize)kind >= G_N_ELEMENTS(kind_names))
		return "text";
	return kind_names[kind];
}

gboolean
codechat_kind_from_string(const gchar *str, CodechatKind *kind)
{
	for (gsize i = 0; i < G_N_ELEMENTS(kind_names); i++) {
		if (g_strcmp0(str, kind_names[i]) == 0) {
			*kind = (CodechatKind)i;
			return TRUE;
		}
	}
	return FALSE;
}

/* names and sizes */

gboolean
codechat_validate_nick(const gchar *nick, GError **error)
{
	gsize len;

	if (nick == NULL || nick[0] == '\0') {
		g_set_error_literal(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_BAD_NICK,
				    "nick is empty");
		return FALSE;
	}
	len = strlen(nick);
	if (len > CODECHAT_MAX_NICK) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_BAD_NICK,
			    "nick is longer than %d characters",
			    CODECHAT_MAX_NICK);
		return FALSE;
	}
	if (!g_ascii_isalpha(nick[0])) {
		g_set_error_literal(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_BAD_NICK,
				    "nick must start with a letter");
		return FALSE;
	}
	for (gsize i = 1; i < len; i++) {
		gchar c = nick[i];
		if (!g_ascii_isalnum(c) && c != '_' && c != '-') {
			g_set_error_literal(error,
					    CODECHAT_ERROR,
					    CODECHAT_ERROR_BAD_NICK,
					    "nick may only hold letters, digits, '_' and '-'");
			return FALSE;
		}
	}
	return TRUE;
}

static gboolean
is_room_start(gchar c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

gboolean
codechat_validate_room(const gchar *room, GError **error)
{
	gsize len;

	if (room == NULL || room[0] == '\0') {
		g_set_error_literal(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_BAD_ROOM,
				    "room is empty");
		return FALSE;
	}
	len = strlen(room);
	if (len > CODECHAT_MAX_ROOM) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_BAD_ROOM,
			    "room name is longer than %d characters",
			    CODECHAT_MAX_ROOM);
		return FALSE;
	}
	if (!is_room_start(room[0])) {
		g_set_error_literal(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_BAD_ROOM,
				    "room name must start with a lowercase letter or a digit");
		return FALSE;
	}
	for (gsize i = 1; i < len; i++) {
		gchar c = room[i];
		if (!is_room_start(c) && c != '_' && c != '.' && c != '-') {
			g_set_error_literal(
			    error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_BAD_ROOM,
			    "room name may only hold lowercase letters, digits, '_', '.' and '-'");
			return FALSE;
		}
	}
	return TRUE;
}

gboolean
codechat_validate_text(const gchar *text, gsize max_text, GError **error)
{
	gsize len;

	if (text == NULL || text[0] == '\0') {
		g_set_error_literal(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_BAD_REQUEST,
				    "text is empty");
		return FALSE;
	}
	len = strlen(text);
	if (len > max_text) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_TOO_LONG,
			    "text is %" G_GSIZE_FORMAT
			    " bytes, more than the limit of %" G_GSIZE_FORMAT,
			    len,
			    max_text);
		return FALSE;
	}
	if (!g_utf8_validate(text, (gssize)len, NULL)) {
		g_set_error_literal(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_BAD_REQUEST,
				    "text is not valid UTF-8");
		return FALSE;
	}
	return TRUE;
}

gboolean
codechat_validate_filename(const gchar *filename, GError **error)
{
	gsize len = strlen(filename);

	if (len == 0 || len > CODECHAT_MAX_FILENAME) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_BAD_REQUEST,
			    "filename must be 1 to %d bytes",
			    CODECHAT_MAX_FILENAME);
		return FALSE;
	}
	if (strchr(filename, '/') != NULL) {
		g_set_error_literal(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_BAD_REQUEST,
				    "filename must not contain '/'");
		return FALSE;
	}
	if (!g_utf8_validate(filename, (gssize)len, NULL)) {
		g_set_error_literal(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_BAD_REQUEST,
				    "filename is not valid UTF-8");
		return FALSE;
	}
	return TRUE;
}

gboolean
codechat_validate_lang(const gchar *lang, GError **error)
{
	gsize len = strlen(lang);

	if (len == 0 || len > CODECHAT_MAX_LANG) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_BAD_REQUEST,
			    "lang must be 1 to %d characters",
			    CODECHAT_MAX_LANG);
		return FALSE;
	}
	for (gsize i = 0; i < len; i++) {
		gchar c = lang[i];
		if (!g_ascii_isalnum(c) && strchr("+#._-", c) == NULL) {
			g_set_error_literal(
			    error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_BAD_REQUEST,
			    "lang may only hold letters, digits and '+', '#', '.', '_', '-'");
			return FALSE;
		}
	}
	return TRUE;
}

gboolean
codechat_validate_ref(const gchar *ref, GError **error)
{
	gsize len = strlen(ref);

	if (len > CODECHAT_MAX_REF) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_BAD_REQUEST,
			    "ref is longer than %d bytes",
			    CODECHAT_MAX_REF);
		return FALSE;
	}
	if (!g_utf8_validate(ref, (gssize)len, NULL)) {
		g_set_error_literal(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_BAD_REQUEST,
				    "ref is not valid UTF-8");
		return FALSE;
	}
	return TRUE;
}

gchar *
codechat_nick_fold(const gchar *nick)
{
	return g_ascii_strdown(nick, -1);
}

gboolean
codechat_nick_equal(const gchar *a, const gchar *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return g_ascii_strcasecmp(a, b) == 0;
}

/* timestamps: RFC 3339, UTC, milliseconds */

gchar *
codechat_timestamp_format(gint64 unix_us)
{
	time_t secs = (time_t)(unix_us / G_USEC_PER_SEC);
	gint ms = (gint)((unix_us % G_USEC_PER_SEC) / 1000);
	struct tm tm;

	if (ms < 0) {
		ms += 1000;
		secs -= 1;
	}
	if (gmtime_r(&secs, &tm) == NULL)
		return g_strdup("1970-01-01T00:00:00.000Z");
	return g_strdup_printf("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
			       tm.tm_year + 1900,
			       tm.tm_mon + 1,
			       tm.tm_mday,
			       tm.tm_hour,
			       tm.tm_min,
			       tm.tm_sec,
			       ms);
}

gboolean
codechat_timestamp_parse(const gchar *str, gint64 *unix_us)
{
	g_autoptr(GDateTime) dt = NULL;

	if (str == NULL)
		return FALSE;
	dt = g_date_time_new_from_iso8601(str, NULL);
	if (dt == NULL)
		return FALSE;
	*unix_us = g_date_time_to_unix(dt) * G_USEC_PER_SEC + g_date_time_get_microsecond(dt);
	return TRUE;
}

/* messages */

CodechatMessage *
codechat_message_new(void)
{
	CodechatMessage *msg = g_new0(CodechatMessage, 1);
	msg->ref_count = 1;
	return msg;
}

CodechatMessage *
codechat_message_ref(CodechatMessage *msg)
{
	g_return_val_if_fail(msg != NULL, NULL);
	g_atomic_int_inc(&msg->ref_count);
	return msg;
}

void
codechat_message_unref(CodechatMessage *msg)
{
	g_return_if_fail(msg != NULL);
	if (!g_atomic_int_dec_and_test(&msg->ref_count))
		return;
	g_free(msg->room);
	g_free(msg->to);
	g_free(msg->from);
	g_free(msg->text);
	g_free(msg->lang);
	g_free(msg->filename);
	g_free(msg);
}

/**
 * codechat_message_build:
 *
 * Adds the members of a `message` object to an object that @builder has
 * begun; the caller adds `ref` where it belongs and ends the object.
 */
void
codechat_message_build(const CodechatMessage *msg, JsonBuilder *builder)
{
	g_autofree gchar *ts = codechat_timestamp_format(msg->ts);

	json_builder_set_member_name(builder, "type");
	json_builder_add_string_value(builder, "message");
	if (msg->room != NULL) {
		json_builder_set_member_name(builder, "room");
		json_builder_add_string_value(builder, msg->room);
	} else {
		json_builder_set_member_name(builder, "to");
		json_builder_add_string_value(builder, msg->to);
	}
	json_builder_set_member_name(builder, "id");
	json_builder_add_int_value(builder, (gint64)msg->id);
	json_builder_set_member_name(builder, "from");
	json_builder_add_string_value(builder, msg->from);
	json_builder_set_member_name(builder, "ts");
	json_builder_add_string_value(builder, ts);
	json_builder_set_member_name(builder, "kind");
	json_builder_add_string_value(builder, codechat_kind_to_string(msg->kind));
	if (msg->lang != NULL) {
		json_builder_set_member_name(builder, "lang");
		json_builder_add_string_value(builder, msg->lang);
	}
	if (msg->filename != NULL) {
		json_builder_set_member_name(builder, "filename");
		json_builder_add_string_value(builder, msg->filename);
	}
	json_builder_set_member_name(builder, "text");
	json_builder_add_string_value(builder, msg->text);
}

gchar *
codechat_message_serialize(const CodechatMessage *msg, const gchar *ref)
{
	g_autoptr(JsonBuilder) builder = json_builder_new_immutable();

	json_builder_begin_object(builder);
	codechat_message_build(msg, builder);
	if (ref != NULL) {
		json_builder_set_member_name(builder, "ref");
		json_builder_add_string_value(builder, ref);
	}
	json_builder_end_object(builder);
	return codechat_builder_to_string(builder);
}

static const gchar *
object_get_string(JsonObject *obj, const gchar *name)
{
	JsonNode *node = json_object_get_member(obj, name);
	if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
	    json_node_get_value_type(node) != G_TYPE_STRING)
		return NULL;
	return json_node_get_string(node);
}

CodechatMessage *
codechat_message_from_json(JsonObject *obj, GError **error)
{
	g_autoptr(CodechatMessage) msg = codechat_message_new();
	const gchar *ts;
	const gchar *kind;
	JsonNode *id;

	if (g_strcmp0(object_get_string(obj, "type"), "message") != 0) {
		g_set_error_literal(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_BAD_REQUEST,
				    "not a message object");
		return NULL;
	}
	msg->room = g_strdup(object_get_string(obj, "room"));
	msg->to = g_strdup(object_get_string(obj, "to"));
	msg->from = g_strdup(object_get_string(obj, "from"));
	msg->text = g_strdup(object_get_string(obj, "text"));
	msg->lang = g_strdup(object_get_string(obj, "lang"));
	msg->filename = g_strdup(object_get_string(obj, "filename"));
	id = json_object_get_member(obj, "id");
	if ((msg->room == NULL) == (msg->to == NULL) || msg->from == NULL || msg->text == NULL ||
	    id == NULL || !JSON_NODE_HOLDS_VALUE(id) ||
	    json_node_get_value_type(id) != G_TYPE_INT64 || json_node_get_int(id) < 1) {
		g_set_error_literal(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_BAD_REQUEST,
				    "message lacks room or to, from, id or text");
		return NULL;
	}
	msg->id = (guint64)json_node_get_int(id);
	ts = object_get_string(obj, "ts");
	if (ts != NULL)
		codechat_timestamp_parse(ts, &msg->ts);
	kind = object_get_string(obj, "kind");
	if (kind == NULL || !codechat_kind_from_string(kind, &msg->kind))
		msg->kind = CODECHAT_KIND_TEXT;
	return g_steal_pointer(&msg);
}

/* requests */

void
codechat_request_free(CodechatRequest *req)
{
	if (req == NULL)
		return;
	g_free(req->ref);
	g_free(req->nick);
	g_free(req->token);
	g_free(req->client);
	g_free(req->room);
	g_free(req->to);
	g_free(req->with);
	g_free(req->text);
	g_free(req->lang);
	g_free(req->filename);
	g_free(req);
}

static const struct {
	const gchar *name;
	CodechatRequestType type;
} request_types[] = {
    {"hello", CODECHAT_REQUEST_HELLO},
    {"join", CODECHAT_REQUEST_JOIN},
    {"part", CODECHAT_REQUEST_PART},
    {"say", CODECHAT_REQUEST_SAY},
    {"history", CODECHAT_REQUEST_HISTORY},
    {"who", CODECHAT_REQUEST_WHO},
    {"rooms", CODECHAT_REQUEST_ROOMS},
    {"ping", CODECHAT_REQUEST_PING},
};

const gchar *
codechat_request_type_to_string(CodechatRequestType type)
{
	for (gsize i = 0; i < G_N_ELEMENTS(request_types); i++) {
		if (request_types[i].type == type)
			return request_types[i].name;
	}
	return "unknown";
}

/* json-glib turns "\u0000" into a NUL that silently cuts the string
 * short, so look for it in the raw frame; backslashes only occur inside
 * strings in valid JSON */
static gboolean
has_nul_escape(const gchar *data, gsize len)
{
	for (gsize i = 0; i + 1 < len; i++) {
		if (data[i] != '\\')
			continue;
		if (data[i + 1] == 'u' && i + 5 < len && data[i + 2] == '0' && data[i + 3] == '0' &&
		    data[i + 4] == '0' && data[i + 5] == '0')
			return TRUE;
		i++; /* skip the escaped character */
	}
	return FALSE;
}

/* json-glib recurses once per level of nesting, so a frame of nothing
 * but brackets would overflow the daemon's stack: refuse deep frames
 * before they reach the parser; no request needs more than a few levels */
#define MAX_JSON_DEPTH 64

static gboolean
nesting_within(const gchar *data, gsize len, guint max_depth)
{
	gboolean in_string = FALSE;
	guint depth = 0;

	for (gsize i = 0; i < len; i++) {
		gchar c = data[i];
		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = FALSE;
		} else if (c == '"') {
			in_string = TRUE;
		} else if (c == '[' || c == '{') {
			if (++depth > max_depth)
				return FALSE;
		} else if ((c == ']' || c == '}') && depth > 0) {
			depth--;
		}
	}
	return TRUE;
}

/* an optional string member: absent or null gives NULL */
static gboolean
take_string(JsonObject *obj, const gchar *name, gboolean required, gchar **out, GError **error)
{
	JsonNode *node = json_object_get_member(obj, name);

	if (node == NULL || JSON_NODE_HOLDS_NULL(node)) {
		if (required) {
			g_set_error(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_BAD_REQUEST,
				    "field \"%s\" is missing",
				    name);
			return FALSE;
		}
		return TRUE;
	}
	if (!JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_STRING) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_BAD_REQUEST,
			    "field \"%s\" must be a string",
			    name);
		return FALSE;
	}
	*out = json_node_dup_string(node);
	return TRUE;
}

static gboolean
take_id(JsonObject *obj, const gchar *name, gboolean *has, guint64 *out, GError **error)
{
	JsonNode *node = json_object_get_member(obj, name);

	if (node == NULL || JSON_NODE_HOLDS_NULL(node))
		return TRUE;
	if (!JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_INT64 ||
	    json_node_get_int(node) < 0) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_BAD_REQUEST,
			    "field \"%s\" must be a non-negative integer",
			    name);
		return FALSE;
	}
	*has = TRUE;
	*out = (guint64)json_node_get_int(node);
	return TRUE;
}

static gboolean
parse_hello(JsonObject *obj, CodechatRequest *req, GError **error)
{
	if (!take_string(obj, "nick", TRUE, &req->nick, error))
		return FALSE;
	if (!take_string(obj, "token", FALSE, &req->token, error))
		return FALSE;
	if (!take_string(obj, "client", FALSE, &req->client, error))
		return FALSE;
	return codechat_validate_nick(req->nick, error);
}

static gboolean
parse_room(JsonObject *obj, CodechatRequest *req, GError **error)
{
	if (!take_string(obj, "room", TRUE, &req->room, error))
		return FALSE;
	return codechat_validate_room(req->room, error);
}

static gboolean
parse_say(JsonObject *obj, CodechatRequest *req, gsize max_text, GError **error)
{
	g_autofree gchar *kind = NULL;

	if (!take_string(obj, "room", FALSE, &req->room, error) ||
	    !take_string(obj, "to", FALSE, &req->to, error))
		return FALSE;
	if ((req->room == NULL) == (req->to == NULL)) {
		g_set_error_literal(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_BAD_REQUEST,
				    "say needs exactly one of \"room\" and \"to\"");
		return FALSE;
	}
	if (req->room != NULL && !codechat_validate_room(req->room, error))
		return FALSE;
	if (req->to != NULL && !codechat_validate_nick(req->to, error))
		return FALSE;
	if (!take_string(obj, "text", TRUE, &req->text, error))
		return FALSE;
	if (!codechat_validate_text(req->text, max_text, error))
		return FALSE;
	if (!take_string(obj, "kind", FALSE, &kind, error))
		return FALSE;
	if (kind != NULL && !codechat_kind_from_string(kind, &req->kind)) {
		g_set_error_literal(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_BAD_REQUEST,
				    "kind must be \"text\", \"code\" or \"action\"");
		return FALSE;
	}
	if (!take_string(obj, "lang", FALSE, &req->lang, error))
		return FALSE;
	if (req->lang != NULL && !codechat_validate_lang(req->lang, error))
		return FALSE;
	if (!take_string(obj, "filename", FALSE, &req->filename, error))
		return FALSE;
	if (req->filename != NULL && !codechat_validate_filename(req->filename, error))
		return FALSE;
	return TRUE;
}

static gboolean
parse_history(JsonObject *obj, CodechatRequest *req, GError **error)
{
	gboolean has_limit = FALSE;
	guint64 limit = 0;

	if (!take_string(obj, "room", FALSE, &req->room, error) ||
	    !take_string(obj, "with", FALSE, &req->with, error))
		return FALSE;
	if ((req->room == NULL) == (req->with == NULL)) {
		g_set_error_literal(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_BAD_REQUEST,
				    "history needs exactly one of \"room\" and \"with\"");
		return FALSE;
	}
	if (req->room != NULL && !codechat_validate_room(req->room, error))
		return FALSE;
	if (req->with != NULL && !codechat_validate_nick(req->with, error))
		return FALSE;
	if (!take_id(obj, "before", &req->has_before, &req->before, error) ||
	    !take_id(obj, "after", &req->has_after, &req->after, error) ||
	    !take_id(obj, "limit", &has_limit, &limit, error))
		return FALSE;
	if (req->has_before && req->has_after) {
		g_set_error_literal(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_BAD_REQUEST,
				    "history takes \"before\" or \"after\", not both");
		return FALSE;
	}
	if (has_limit) {
		if (limit == 0) {
			g_set_error_literal(error,
					    CODECHAT_ERROR,
					    CODECHAT_ERROR_BAD_REQUEST,
					    "limit must be at least 1");
			return FALSE;
		}
		/* a larger page is not an error: it is served at the maximum */
		req->limit = (guint)MIN(limit, (guint64)CODECHAT_MAX_PAGE);
	}
	return TRUE;
}

/**
 * codechat_request_parse:
 * @parser: (nullable): a parser to reuse, or %NULL
 * @ref: (out) (optional): the request's valid `ref`, also on error, so that
 *   the error reply can carry it
 *
 * Parses one text frame into a request and checks every field against
 * the protocol's rules.  Errors are in %CODECHAT_ERROR with the code to
 * answer with.
 */
CodechatRequest *
codechat_request_parse(JsonParser *parser,
		       const gchar *data,
		       gsize len,
		       gsize max_text,
		       gchar **ref,
		       GError **error)
{
	return codechat_request_parse_full(parser, data, len, max_text, ref, NULL, error);
}

/**
 * codechat_request_parse_full:
 * @type: (out) (optional): the request's type when it names a known one,
 *   also on error, else -1; the daemon needs it to tell a bad `hello`
 *   from a request sent before `hello`
 *
 * As codechat_request_parse().
 */
CodechatRequest *
codechat_request_parse_full(JsonParser *parser,
			    const gchar *data,
			    gsize len,
			    gsize max_text,
			    gchar **ref,
			    gint *type_out,
			    GError **error)
{
	g_autoptr(JsonParser) own_parser = NULL;
	g_autoptr(CodechatRequest) req = g_new0(CodechatRequest, 1);
	g_autoptr(GError) error_local = NULL;
	g_autofree gchar *type = NULL;
	g_autoptr(GError) type_error = NULL;
	gboolean type_ok;
	JsonNode *root;
	JsonObject *obj;
	gboolean ok = FALSE;
	gboolean found = FALSE;

	if (ref != NULL)
		*ref = NULL;
	if (type_out != NULL)
		*type_out = -1;
	if (parser == NULL)
		parser = own_parser = json_parser_new_immutable();
	if (!nesting_within(data, len, MAX_JSON_DEPTH)) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_BAD_JSON,
			    "frame is nested more than %d levels deep",
			    MAX_JSON_DEPTH);
		return NULL;
	}
	if (len > G_MAXSSIZE ||
	    !json_parser_load_from_data(parser, data, (gssize)len, &error_local)) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_BAD_JSON,
			    "frame is not valid JSON: %s",
			    error_local != NULL ? error_local->message : "too large");
		return NULL;
	}
	root = json_parser_get_root(parser);
	if (root == NULL) {
		/* json-glib takes an empty document as valid */
		g_set_error_literal(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_BAD_JSON,
				    "frame is empty");
		return NULL;
	}
	if (!JSON_NODE_HOLDS_OBJECT(root)) {
		g_set_error_literal(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_BAD_REQUEST,
				    "frame is not a JSON object");
		return NULL;
	}
	obj = json_node_get_object(root);

	/* the type first, so that the caller learns it even when another
	 * field is wrong; then the ref, so that errors can carry it */
	type_ok = take_string(obj, "type", TRUE, &type, &type_error);
	for (gsize i = 0; type_ok && i < G_N_ELEMENTS(request_types); i++) {
		if (g_strcmp0(type, request_types[i].name) == 0) {
			req->type = request_types[i].type;
			found = TRUE;
			break;
		}
	}
	if (found && type_out != NULL)
		*type_out = (gint)req->type;
	if (!take_string(obj, "ref", FALSE, &req->ref, error))
		return NULL;
	if (req->ref != NULL && !codechat_validate_ref(req->ref, error))
		return NULL;
	if (ref != NULL)
		*ref = g_strdup(req->ref);
	if (!type_ok) {
		g_propagate_error(error, g_steal_pointer(&type_error));
		return NULL;
	}
	if (!found) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_BAD_REQUEST,
			    "unknown request type \"%.64s\"",
			    type);
		return NULL;
	}
	if (has_nul_escape(data, len)) {
		g_set_error_literal(error,
				    CODECHAT_ERROR,
				    CODECHAT_ERROR_BAD_REQUEST,
				    "strings must not contain NUL");
		return NULL;
	}

	switch (req->type) {
	case CODECHAT_REQUEST_HELLO:
		ok = parse_hello(obj, req, error);
		break;
	case CODECHAT_REQUEST_JOIN:
		ok = parse_room(obj, req, error) &&
		     take_id(obj, "since", &req->has_since, &req->since, error);
		break;
	case CODECHAT_REQUEST_PART:
	case CODECHAT_REQUEST_WHO:
		ok = parse_room(obj, req, error);
		break;
	case CODECHAT_REQUEST_SAY:
		ok = parse_say(obj, req, max_text, error);
		break;
	case CODECHAT_REQUEST_HISTORY:
		ok = parse_history(obj, req, error);
		break;
	case CODECHAT_REQUEST_ROOMS:
	case CODECHAT_REQUEST_PING:
		ok = TRUE;
		break;
	default:
		g_assert_not_reached();
	}
	if (!ok)
		return NULL;
	return g_steal_pointer(&req);
}

/* replies */

gchar *
codechat_builder_to_string(JsonBuilder *builder)
{
	g_autoptr(JsonGenerator) gen = json_generator_new();
	g_autoptr(JsonNode) root = json_builder_get_root(builder);

	json_generator_set_root(gen, root);
	return json_generator_to_data(gen, NULL);
}

gchar *
codechat_error_frame(const GError *error, const gchar *ref)
{
	g_autoptr(JsonBuilder) builder = json_builder_new_immutable();
	/* the message may quote the frame, and json-glib's parse errors
	 * quote it after unescaping: "\200" becomes a lone byte 0x80.  A
	 * frame must be UTF-8, or libsoup drops it with a critical */
	g_autofree gchar *message = g_utf8_make_valid(error->message, -1);
	const gchar *code = "internal";

	if (error->domain == CODECHAT_ERROR)
		code = codechat_error_to_code(error->code);
	json_builder_begin_object(builder);
	json_builder_set_member_name(builder, "type");
	json_builder_add_string_value(builder, "error");
	json_builder_set_member_name(builder, "code");
	json_builder_add_string_value(builder, code);
	json_builder_set_member_name(builder, "message");
	json_builder_add_string_value(builder, message);
	if (ref != NULL) {
		json_builder_set_member_name(builder, "ref");
		json_builder_add_string_value(builder, ref);
	}
	json_builder_end_object(builder);
	return codechat_builder_to_string(builder);
}
