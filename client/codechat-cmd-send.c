/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <gio/gunixinputstream.h>
#include <glib/gi18n.h>
#include <string.h>
#include <unistd.h>

#include "codechat-cmd.h"
#include "codechat-log.h"

/* codechat send [--room R | --to NICK] [--code LANG] [--file PATH] [TEXT…]
 *
 * Reads the text (arguments, file or stdin), says hello, joins the room
 * (a plain join: nothing is replayed), says it, and exits once the server
 * sent the message back with our ref: then it is stored. */

/* more than any server takes; stops `codechat send < /dev/zero` early */
#define SEND_MAX_INPUT (16 * 1024 * 1024)
#define READ_CHUNK     (64 * 1024)

typedef struct {
	CodechatApplication *app; /* (unowned) held until finished */
	CodechatConnection *conn; /* (owned) (nullable) */
	GInputStream *input;	  /* (owned) (nullable) stdin */
	GByteArray *buffer;	  /* (owned) (nullable) what stdin gave so far */
	gchar *room;		  /* (owned) (nullable) */
	gchar *to;		  /* (owned) (nullable) */
	gchar *text;		  /* (owned) (nullable) */
	gchar *lang;		  /* (owned) (nullable) */
	gchar *filename;	  /* (owned) (nullable) */
	gchar *path;		  /* (owned) (nullable) --file */
	CodechatKind kind;
} SendState;

static void
send_state_free(SendState *state)
{
	g_clear_object(&state->conn);
	g_clear_object(&state->input);
	g_clear_pointer(&state->buffer, g_byte_array_unref);
	g_free(state->room);
	g_free(state->to);
	g_free(state->text);
	g_free(state->lang);
	g_free(state->filename);
	g_free(state->path);
	g_free(state);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(SendState, send_state_free)

/* the end, good or bad; takes @state and @error */
static void
send_finish(SendState *state, GError *error)
{
	g_autoptr(SendState) owned = state;

	codechat_application_close_and_finish(owned->app, owned->conn, error);
}

static const struct {
	const gchar *suffix;
	const gchar *lang;
} lang_by_suffix[] = {
    {".c", "c"},
    {".h", "c"},
    {".cc", "cpp"},
    {".cpp", "cpp"},
    {".cxx", "cpp"},
    {".hh", "cpp"},
    {".hpp", "cpp"},
    {".cs", "csharp"},
    {".css", "css"},
    {".diff", "diff"},
    {".patch", "diff"},
    {".go", "go"},
    {".html", "html"},
    {".htm", "html"},
    {".java", "java"},
    {".js", "javascript"},
    {".mjs", "javascript"},
    {".json", "json"},
    {".kt", "kotlin"},
    {".lua", "lua"},
    {".md", "markdown"},
    {".pl", "perl"},
    {".php", "php"},
    {".py", "python"},
    {".rb", "ruby"},
    {".rs", "rust"},
    {".sh", "sh"},
    {".bash", "bash"},
    {".sql", "sql"},
    {".swift", "swift"},
    {".toml", "toml"},
    {".ts", "typescript"},
    {".vala", "vala"},
    {".xml", "xml"},
    {".ui", "xml"},
    {".yaml", "yaml"},
    {".yml", "yaml"},
    {".ini", "ini"},
    {".conf", "ini"},
    {".cmake", "cmake"},
    {".m4", "m4"},
    {".el", "elisp"},
    {".hs", "haskell"},
    {".ml", "ocaml"},
    {".scm", "scheme"},
    {".zig", "zig"},
    {".nix", "nix"},
    {".po", "po"},
};

static const struct {
	const gchar *name;
	const gchar *lang;
} lang_by_name[] = {
    {"meson.build", "meson"},
    {"meson_options.txt", "meson"},
    {"meson.options", "meson"},
    {"Makefile", "make"},
    {"GNUmakefile", "make"},
    {"Dockerfile", "dockerfile"},
    {"CMakeLists.txt", "cmake"},
};

/* the language of a file, from its name; NULL when unknown */
static const gchar *
guess_lang(const gchar *basename)
{
	g_autofree gchar *lower = g_ascii_strdown(basename, -1);

	for (gsize i = 0; i < G_N_ELEMENTS(lang_by_name); i++) {
		if (g_strcmp0(basename, lang_by_name[i].name) == 0)
			return lang_by_name[i].lang;
	}
	for (gsize i = 0; i < G_N_ELEMENTS(lang_by_suffix); i++) {
		if (g_str_has_suffix(lower, lang_by_suffix[i].suffix))
			return lang_by_suffix[i].lang;
	}
	return NULL;
}

static void
say_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	SendState *state = user_data;
	CodechatConnection *conn = CODECHAT_CONNECTION(source);
	CodechatOutput *output = codechat_application_get_output(state->app);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) reply = NULL;
	gint64 id = 0;

	reply = codechat_connection_request_finish(conn, result, &error);
	if (reply == NULL) {
		send_finish(state, g_steal_pointer(&error));
		return;
	}
	if (g_strcmp0(codechat_cmd_get_string(reply, "type"), "message") != 0 ||
	    !codechat_cmd_get_int(reply, "id", &id)) {
		send_finish(state, codechat_cmd_bad_reply_error(reply, "message"));
		return;
	}
	codechat_info(CODECHAT_LOG_FIELDS(.room = state->room, .msgid = id),
		      "message %" G_GINT64_FORMAT " stored",
		      id);
	/* scripts get what was stored, with its id */
	if (codechat_output_is_json(output))
		codechat_output_message(output, reply);
	send_finish(state, NULL);
}

static void
say(SendState *state)
{
	g_autoptr(JsonObject) request = codechat_cmd_request_new("say");

	if (state->room != NULL)
		json_object_set_string_member(request, "room", state->room);
	else
		json_object_set_string_member(request, "to", state->to);
	json_object_set_string_member(request, "text", state->text);
	if (state->kind != CODECHAT_KIND_TEXT)
		json_object_set_string_member(request,
					      "kind",
					      codechat_kind_to_string(state->kind));
	if (state->lang != NULL)
		json_object_set_string_member(request, "lang", state->lang);
	if (state->filename != NULL)
		json_object_set_string_member(request, "filename", state->filename);
	codechat_connection_request_async(state->conn,
					  request,
					  CODECHAT_REQUEST_TIMEOUT_S,
					  say_cb,
					  state);
}

static void
join_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	SendState *state = user_data;
	CodechatConnection *conn = CODECHAT_CONNECTION(source);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) reply = NULL;

	reply = codechat_connection_request_finish(conn, result, &error);
	if (reply == NULL) {
		send_finish(state, g_steal_pointer(&error));
		return;
	}
	say(state);
}

static void
connect_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	SendState *state = user_data;
	CodechatConnection *conn = CODECHAT_CONNECTION(source);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) request = NULL;
	gsize max_text;
	gsize len;

	if (!codechat_connection_connect_finish(conn, result, &error)) {
		send_finish(state, g_steal_pointer(&error));
		return;
	}
	/* a frame far over the limit would only get the connection closed */
	max_text = codechat_connection_get_max_text(conn);
	len = strlen(state->text);
	if (len > max_text) {
		send_finish(
		    state,
		    g_error_new(CODECHAT_ERROR,
				CODECHAT_ERROR_TOO_LONG,
				_("the text is %zu bytes, more than the server's limit of %zu"),
				len,
				max_text));
		return;
	}
	if (state->room == NULL) {
		say(state);
		return;
	}
	request = codechat_cmd_request_new("join");
	json_object_set_string_member(request, "room", state->room);
	codechat_connection_request_async(conn,
					  request,
					  CODECHAT_REQUEST_TIMEOUT_S,
					  join_cb,
					  state);
}

/* the text is known: check it, then go */
static void
text_ready(SendState *state)
{
	gsize len = strlen(state->text);

	if (len == 0) {
		send_finish(state,
			    g_error_new_literal(CODECHAT_ERROR,
						CODECHAT_ERROR_INVALID_ARGUMENT,
						_("nothing to send: the text is empty")));
		return;
	}
	if (!g_utf8_validate(state->text, (gssize)len, NULL)) {
		send_finish(state,
			    g_error_new_literal(CODECHAT_ERROR,
						CODECHAT_ERROR_INVALID_ARGUMENT,
						_("the text is not valid UTF-8")));
		return;
	}
	state->conn = codechat_application_new_connection(state->app);
	codechat_connection_connect_async(state->conn, NULL, connect_cb, state);
}

/* takes @data; NUL bytes would silently cut the text short */
static gboolean
take_text(SendState *state, gchar *data, gsize len, const gchar *what, GError **error)
{
	g_autofree gchar *owned = data;

	if (memchr(owned, '\0', len) != NULL) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_INVALID_ARGUMENT,
			    _("%s holds NUL bytes: it is not text"),
			    what);
		return FALSE;
	}
	state->text = g_steal_pointer(&owned);
	return TRUE;
}

static void
stdin_read_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	SendState *state = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) bytes = NULL;
	gsize len;
	gchar *data;

	bytes = g_input_stream_read_bytes_finish(G_INPUT_STREAM(source), result, &error);
	if (bytes == NULL) {
		send_finish(state,
			    g_error_new(CODECHAT_ERROR,
					CODECHAT_ERROR_INVALID_ARGUMENT,
					_("cannot read the standard input: %s"),
					error->message));
		return;
	}
	if (g_bytes_get_size(bytes) > 0) {
		g_byte_array_append(state->buffer,
				    g_bytes_get_data(bytes, NULL),
				    (guint)g_bytes_get_size(bytes));
		if (state->buffer->len > SEND_MAX_INPUT) {
			send_finish(state,
				    g_error_new(CODECHAT_ERROR,
						CODECHAT_ERROR_TOO_LONG,
						_("the standard input holds more than %d MiB"),
						SEND_MAX_INPUT / (1024 * 1024)));
			return;
		}
		g_input_stream_read_bytes_async(state->input,
						READ_CHUNK,
						G_PRIORITY_DEFAULT,
						NULL,
						stdin_read_cb,
						state);
		return;
	}

	/* end of input */
	len = state->buffer->len;
	g_byte_array_append(state->buffer, (const guint8 *)"", 1);
	data = (gchar *)g_byte_array_free(g_steal_pointer(&state->buffer), FALSE);
	if (!take_text(state, data, len, _("the standard input"), &error)) {
		send_finish(state, g_steal_pointer(&error));
		return;
	}
	/* `echo hi | codechat send` says "hi"; a snippet keeps its last newline */
	if (state->kind == CODECHAT_KIND_TEXT) {
		gsize n = strlen(state->text);

		while (n > 0 && (state->text[n - 1] == '\n' || state->text[n - 1] == '\r'))
			state->text[--n] = '\0';
	}
	text_ready(state);
}

static void
file_loaded_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	SendState *state = user_data;
	g_autoptr(GError) error = NULL;
	gchar *contents = NULL;
	gsize len = 0;

	if (!g_file_load_contents_finish(G_FILE(source), result, &contents, &len, NULL, &error)) {
		send_finish(state,
			    g_error_new(CODECHAT_ERROR,
					CODECHAT_ERROR_INVALID_ARGUMENT,
					_("cannot read %s: %s"),
					state->path,
					error->message));
		return;
	}
	if (!take_text(state, contents, len, state->path, &error)) {
		send_finish(state, g_steal_pointer(&error));
		return;
	}
	text_ready(state);
}

void
codechat_cmd_send(CodechatApplication *app)
{
	g_auto(GStrv) args = NULL;
	g_autofree gchar *room = NULL;
	g_autofree gchar *to = NULL;
	g_autofree gchar *code = NULL;
	g_autofree gchar *file = NULL;
	g_autoptr(GError) error = NULL;
	SendState *state;
	const GOptionEntry entries[] = {
	    {"room",
	     'r',
	     0,
	     G_OPTION_ARG_STRING,
	     &room,
	     N_("Room to send to (default: general, or $CODECHAT_ROOM)"),
	     N_("ROOM")},
	    {"to",
	     't',
	     0,
	     G_OPTION_ARG_STRING,
	     &to,
	     N_("Send a direct message to NICK instead"),
	     N_("NICK")},
	    {"code",
	     'c',
	     0,
	     G_OPTION_ARG_STRING,
	     &code,
	     N_("Send a code snippet in language LANG (e.g. c, diff)"),
	     N_("LANG")},
	    {"file",
	     'f',
	     0,
	     G_OPTION_ARG_FILENAME,
	     &file,
	     N_("Send the content of PATH as a snippet"),
	     N_("PATH")},
	    {NULL},
	};

	if (!codechat_application_parse_options(app, entries, TRUE, &args))
		return;

	state = g_new0(SendState, 1);
	state->app = app;
	state->kind = CODECHAT_KIND_TEXT;

	if (room != NULL && to != NULL) {
		send_finish(state,
			    g_error_new_literal(CODECHAT_ERROR,
						CODECHAT_ERROR_INVALID_ARGUMENT,
						_("--room and --to cannot be used together")));
		return;
	}
	if (file != NULL && args[0] != NULL) {
		send_finish(state,
			    g_error_new_literal(CODECHAT_ERROR,
						CODECHAT_ERROR_INVALID_ARGUMENT,
						_("--file and TEXT cannot be used together")));
		return;
	}
	if (code != NULL && !codechat_validate_lang(code, &error)) {
		send_finish(state,
			    g_error_new(CODECHAT_ERROR,
					CODECHAT_ERROR_INVALID_ARGUMENT,
					_("--code: %s"),
					error->message));
		return;
	}
	/* room and nick names are the server's to check (exit status 3) */
	if (to != NULL)
		state->to = g_steal_pointer(&to);
	else if (room != NULL)
		state->room = g_steal_pointer(&room);
	else
		state->room = g_strdup(codechat_application_get_default_room(app));
	if (code != NULL) {
		state->kind = CODECHAT_KIND_CODE;
		state->lang = g_steal_pointer(&code);
	}

	if (args[0] != NULL) {
		state->text = g_strjoinv(" ", args);
		text_ready(state);
	} else if (file != NULL) {
		g_autoptr(GFile) gfile = g_file_new_for_commandline_arg(file);
		g_autofree gchar *basename = g_file_get_basename(gfile);
		g_autofree gchar *display = g_filename_display_basename(file);

		if (!codechat_validate_filename(display, &error)) {
			send_finish(state,
				    g_error_new(CODECHAT_ERROR,
						CODECHAT_ERROR_INVALID_ARGUMENT,
						_("--file: %s"),
						error->message));
			return;
		}
		state->kind = CODECHAT_KIND_CODE;
		state->filename = g_steal_pointer(&display);
		if (state->lang == NULL)
			state->lang = g_strdup(guess_lang(basename));
		state->path = g_steal_pointer(&file);
		g_file_load_contents_async(gfile, NULL, file_loaded_cb, state);
	} else {
		if (isatty(STDIN_FILENO))
			codechat_application_note(
			    app,
			    _("reading the message from the standard input; end it with Ctrl-D"));
		state->input = g_unix_input_stream_new(STDIN_FILENO, FALSE);
		state->buffer = g_byte_array_new();
		g_input_stream_read_bytes_async(state->input,
						READ_CHUNK,
						G_PRIORITY_DEFAULT,
						NULL,
						stdin_read_cb,
						state);
	}
}
