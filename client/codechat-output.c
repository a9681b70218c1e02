/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <glib/gi18n.h>
#include <string.h>
#include <unistd.h>

#include "codechat-output.h"

#define COLOR_RESET "\033[0m"
#define COLOR_DIM   "\033[2m"
#define COLOR_BOLD  "\033[1m"
#define COLOR_ROOM  "\033[36m"
#define COLOR_CODE  "\033[33m"
#define COLOR_ME    "\033[35m"

/* continuation lines of a message, and every line of a snippet */
#define INDENT "    "

/* nick colours for the interactive chat: none is the plain cyan of rooms,
 * yellow of code or magenta of actions, so a nick stands out of its line;
 * the last three need a 256-colour terminal (others show them plain) */
static const gchar *const nick_palette[] = {
    "\033[31m",
    "\033[32m",
    "\033[34m",
    "\033[1;31m",
    "\033[1;32m",
    "\033[1;33m",
    "\033[1;34m",
    "\033[1;35m",
    "\033[1;36m",
    "\033[38;5;208m",
    "\033[38;5;141m",
    "\033[38;5;43m",
};

struct _CodechatOutput {
	gboolean json;
	gboolean color;
	gboolean nick_colors;
};

gboolean
codechat_color_mode_from_string(const gchar *str, CodechatColorMode *mode)
{
	if (g_strcmp0(str, "auto") == 0)
		*mode = CODECHAT_COLOR_AUTO;
	else if (g_strcmp0(str, "always") == 0)
		*mode = CODECHAT_COLOR_ALWAYS;
	else if (g_strcmp0(str, "never") == 0)
		*mode = CODECHAT_COLOR_NEVER;
	else
		return FALSE;
	return TRUE;
}

/* https://no-color.org/: any non-empty NO_COLOR turns colour off */
static gboolean
auto_color(void)
{
	const gchar *no_color = g_getenv("NO_COLOR");
	const gchar *term = g_getenv("TERM");

	if (no_color != NULL && no_color[0] != '\0')
		return FALSE;
	if (term == NULL || g_strcmp0(term, "dumb") == 0)
		return FALSE;
	return isatty(STDOUT_FILENO);
}

CodechatOutput *
codechat_output_new(gboolean json, CodechatColorMode color)
{
	CodechatOutput *self = g_new0(CodechatOutput, 1);

	self->json = json;
	if (json)
		self->color = FALSE;
	else if (color == CODECHAT_COLOR_ALWAYS)
		self->color = TRUE;
	else if (color == CODECHAT_COLOR_NEVER)
		self->color = FALSE;
	else
		self->color = auto_color();
	return self;
}

void
codechat_output_free(CodechatOutput *self)
{
	g_free(self);
}

gboolean
codechat_output_is_json(CodechatOutput *self)
{
	return self->json;
}

gboolean
codechat_output_use_color(CodechatOutput *self)
{
	return self->color;
}

/**
 * codechat_output_set_nick_colors:
 *
 * With colours on, gives each nick a colour of its own (the same one in
 * every run) instead of bold: what `chat` wants, where many people talk.
 */
void
codechat_output_set_nick_colors(CodechatOutput *self, gboolean nick_colors)
{
	self->nick_colors = nick_colors;
}

/* the escape sequence that starts @nick's colour; nicks are unique
 * without regard to case, so are their colours */
const gchar *
codechat_output_nick_color(const gchar *nick)
{
	g_autofree gchar *lower = g_ascii_strdown(nick != NULL ? nick : "", -1);
	guint hash = 5381;

	/* djb2, spelled out: the colours must not change between versions */
	for (const gchar *p = lower; *p != '\0'; p++)
		hash = hash * 33 + (guchar)*p;
	return nick_palette[hash % G_N_ELEMENTS(nick_palette)];
}

/**
 * codechat_output_sanitize:
 *
 * Replaces control characters other than newline and tab, so that what
 * others wrote cannot drive the terminal (escape sequences).
 */
gchar *
codechat_output_sanitize(const gchar *text)
{
	g_autofree gchar *valid = NULL;
	GString *str;

	if (text == NULL)
		return g_strdup("");
	valid = g_utf8_make_valid(text, -1);
	str = g_string_sized_new(strlen(valid));
	for (const gchar *p = valid; *p != '\0'; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);

		if ((c < 0x20 && c != '\n' && c != '\t') || (c >= 0x7f && c < 0xa0))
			g_string_append_unichar(str, 0xfffd);
		else
			g_string_append_unichar(str, c);
	}
	return g_string_free(str, FALSE);
}

static const gchar *
get_string(JsonObject *obj, const gchar *name)
{
	JsonNode *node = json_object_get_member(obj, name);

	if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
	    json_node_get_value_type(node) != G_TYPE_STRING)
		return NULL;
	return json_node_get_string(node);
}

/* HH:MM:SS in local time */
static gchar *
format_time(const gchar *ts)
{
	g_autoptr(GDateTime) dt = NULL;
	g_autoptr(GDateTime) local = NULL;

	if (ts != NULL)
		dt = g_date_time_new_from_iso8601(ts, NULL);
	if (dt == NULL)
		return g_strdup("--:--:--");
	local = g_date_time_to_local(dt);
	return g_date_time_format(local, "%H:%M:%S");
}

static void
append_colored(CodechatOutput *self, GString *out, const gchar *color, const gchar *text)
{
	if (self->color)
		g_string_append_printf(out, "%s%s%s", color, text, COLOR_RESET);
	else
		g_string_append(out, text);
}

/* `<nick>`: bold, or the nick's own colour */
static void
append_nick(CodechatOutput *self, GString *out, const gchar *nick)
{
	g_autofree gchar *label = g_strdup_printf("<%s>", nick);

	append_colored(self,
		       out,
		       self->nick_colors ? codechat_output_nick_color(nick) : COLOR_BOLD,
		       label);
}

/* the lines of @text after the first, each indented */
static void
append_lines(GString *out, const gchar *text, gboolean first_on_own_line)
{
	g_auto(GStrv) lines = NULL;
	guint n;

	lines = g_strsplit(text, "\n", -1);
	n = g_strv_length(lines);
	/* a final newline ends the last line, it does not start another */
	if (n > 1 && lines[n - 1][0] == '\0')
		n--;
	for (guint i = 0; i < n; i++) {
		if (i > 0 || first_on_own_line)
			g_string_append(out, "\n" INDENT);
		g_string_append(out, lines[i]);
	}
}

/**
 * codechat_output_format_message:
 *
 * The plain form of a `message` object, without the final newline:
 * `[HH:MM:SS] #room <nick> text`, `[HH:MM:SS] <from> -> <to>: text`,
 * `* nick text` for actions, and for code a header line followed by the
 * snippet's lines, indented.
 */
gchar *
codechat_output_format_message(CodechatOutput *self, JsonObject *message)
{
	g_autoptr(GString) out = g_string_new(NULL);
	g_autofree gchar *time = format_time(get_string(message, "ts"));
	g_autofree gchar *text = codechat_output_sanitize(get_string(message, "text"));
	g_autofree gchar *from = codechat_output_sanitize(get_string(message, "from"));
	const gchar *room = get_string(message, "room");
	const gchar *to = get_string(message, "to");
	const gchar *kind = get_string(message, "kind");
	const gchar *lang = get_string(message, "lang");
	const gchar *filename = get_string(message, "filename");
	g_autofree gchar *stamp = g_strdup_printf("[%s]", time);

	append_colored(self, out, COLOR_DIM, stamp);
	g_string_append_c(out, ' ');
	if (room != NULL) {
		g_autofree gchar *r = codechat_output_sanitize(room);
		g_autofree gchar *label = g_strdup_printf("#%s", r);

		append_colored(self, out, COLOR_ROOM, label);
		g_string_append_c(out, ' ');
	} else {
		g_autofree gchar *t = codechat_output_sanitize(to);

		append_nick(self, out, from);
		g_string_append_printf(out, " -> %s: ", t);
	}

	if (g_strcmp0(kind, "action") == 0) {
		g_autofree gchar *me = g_strdup_printf("* %s", from);

		append_colored(self,
			       out,
			       self->nick_colors ? codechat_output_nick_color(from) : COLOR_ME,
			       me);
		g_string_append_c(out, ' ');
		append_lines(out, text, FALSE);
	} else if (g_strcmp0(kind, "code") == 0) {
		/* Translators: the header of a code snippet, followed by its
		 * language and file name in parentheses */
		g_autoptr(GString) what = g_string_new(_("code"));

		if (room != NULL) {
			append_nick(self, out, from);
			g_string_append_c(out, ' ');
		}
		if (lang != NULL || filename != NULL) {
			g_autofree gchar *l = codechat_output_sanitize(lang);
			g_autofree gchar *f = codechat_output_sanitize(filename);

			g_string_append(what, " (");
			if (lang != NULL)
				g_string_append(what, l);
			if (lang != NULL && filename != NULL)
				g_string_append(what, ", ");
			if (filename != NULL)
				g_string_append(what, f);
			g_string_append_c(what, ')');
		}
		g_string_append_c(what, ':');
		append_colored(self, out, COLOR_CODE, what->str);
		append_lines(out, text, TRUE);
	} else {
		if (room != NULL) {
			append_nick(self, out, from);
			g_string_append_c(out, ' ');
		}
		append_lines(out, text, FALSE);
	}
	return g_string_free(g_steal_pointer(&out), FALSE);
}

/* one line of JSON; `ref` belongs to the request, not to the data */
void
codechat_output_json(CodechatOutput *self, JsonObject *obj)
{
	g_autoptr(JsonObject) copy = json_object_new();
	g_autoptr(JsonNode) root = json_node_new(JSON_NODE_OBJECT);
	g_autoptr(JsonGenerator) gen = json_generator_new();
	g_autofree gchar *line = NULL;
	JsonObjectIter iter;
	const gchar *name;
	JsonNode *node;

	json_object_iter_init_ordered(&iter, obj);
	while (json_object_iter_next_ordered(&iter, &name, &node)) {
		if (g_strcmp0(name, "ref") == 0)
			continue;
		json_object_set_member(copy, name, json_node_copy(node));
	}
	json_node_set_object(root, copy);
	json_generator_set_root(gen, root);
	line = json_generator_to_data(gen, NULL);
	g_print("%s\n", line);
}

void
codechat_output_message(CodechatOutput *self, JsonObject *message)
{
	g_autofree gchar *line = NULL;

	if (self->json) {
		codechat_output_json(self, message);
		return;
	}
	line = codechat_output_format_message(self, message);
	g_print("%s\n", line);
}

static gint64
get_int(JsonObject *obj, const gchar *name)
{
	JsonNode *node = json_object_get_member(obj, name);

	if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
	    json_node_get_value_type(node) != G_TYPE_INT64)
		return 0;
	return json_node_get_int(node);
}

/**
 * codechat_output_format_room:
 *
 * The plain form of an entry of `rooms` (name, members, last_id, topic),
 * without the final newline.
 */
gchar *
codechat_output_format_room(CodechatOutput *self, JsonObject *room)
{
	g_autoptr(GString) out = g_string_new(NULL);
	g_autofree gchar *name = codechat_output_sanitize(get_string(room, "name"));
	g_autofree gchar *topic = codechat_output_sanitize(get_string(room, "topic"));
	g_autofree gchar *label = g_strdup_printf("#%-24s", name);
	gint64 members = get_int(room, "members");

	append_colored(self, out, COLOR_ROOM, label);
	g_string_append_printf(
	    out,
	    " %4" G_GINT64_FORMAT " %-7s  %s %" G_GINT64_FORMAT "%s%s",
	    members,
	    g_dngettext(GETTEXT_PACKAGE, "member", "members", (gulong)MAX(members, 0)),
	    /* Translators: followed by the id of the room's latest message */
	    _("last id"),
	    get_int(room, "last_id"),
	    topic[0] != '\0' ? "  " : "",
	    topic);
	return g_string_free(g_steal_pointer(&out), FALSE);
}

/* an entry of `rooms`: name, members, last_id, topic */
void
codechat_output_room(CodechatOutput *self, JsonObject *room)
{
	g_autofree gchar *line = NULL;

	if (self->json) {
		codechat_output_json(self, room);
		return;
	}
	line = codechat_output_format_room(self, room);
	g_print("%s\n", line);
}

void
codechat_output_member(CodechatOutput *self, const gchar *room, const gchar *nick)
{
	g_autofree gchar *safe = NULL;

	if (self->json) {
		g_autoptr(JsonObject) obj = json_object_new();

		json_object_set_string_member(obj, "room", room);
		json_object_set_string_member(obj, "nick", nick);
		codechat_output_json(self, obj);
		return;
	}
	safe = codechat_output_sanitize(nick);
	g_print("%s\n", safe);
}

static gchar *
node_to_plain(JsonNode *node)
{
	if (JSON_NODE_HOLDS_OBJECT(node)) {
		JsonObjectIter iter;
		const gchar *name;
		JsonNode *child;
		g_autoptr(GString) str = g_string_new(NULL);

		json_object_iter_init_ordered(&iter, json_node_get_object(node));
		while (json_object_iter_next_ordered(&iter, &name, &child)) {
			g_autofree gchar *value = node_to_plain(child);

			if (str->len > 0)
				g_string_append(str, ", ");
			g_string_append_printf(str, "%s %s", name, value);
		}
		return g_string_free(g_steal_pointer(&str), FALSE);
	}
	if (JSON_NODE_HOLDS_VALUE(node)) {
		if (json_node_get_value_type(node) == G_TYPE_STRING)
			return codechat_output_sanitize(json_node_get_string(node));
		if (json_node_get_value_type(node) == G_TYPE_INT64)
			return g_strdup_printf("%" G_GINT64_FORMAT, json_node_get_int(node));
		if (json_node_get_value_type(node) == G_TYPE_BOOLEAN)
			return g_strdup(json_node_get_boolean(node) ? _("yes") : _("no"));
		if (json_node_get_value_type(node) == G_TYPE_DOUBLE)
			return g_strdup_printf("%g", json_node_get_double(node));
	}
	return g_strdup("-");
}

/* `key: value` lines for people, one object for scripts */
void
codechat_output_status(CodechatOutput *self, JsonObject *status)
{
	JsonObjectIter iter;
	const gchar *name;
	JsonNode *node;

	if (self->json) {
		codechat_output_json(self, status);
		return;
	}
	json_object_iter_init_ordered(&iter, status);
	while (json_object_iter_next_ordered(&iter, &name, &node)) {
		g_autofree gchar *value = node_to_plain(node);
		g_autofree gchar *label = g_strdup_printf("%s:", name);

		g_print("%-10s %s\n", label, value);
	}
}
