#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Checks the bash completion of codechat: runs the completion function on
# command lines, as bash would when Tab is pressed at their end, and
# compares COMPREPLY with what is expected.
#
# usage: test-completion.sh COMPLETION-FILE [BASH-COMPLETION]

completion=${1:?usage: test-completion.sh COMPLETION-FILE [BASH-COMPLETION]}
bash_completion=${2:-/usr/share/bash-completion/bash_completion}

if [[ ! -r $bash_completion ]]; then
	echo "1..0 # SKIP no bash-completion at $bash_completion"
	exit 0
fi
# shellcheck source=/dev/null
. "$bash_completion" || exit 1
# shellcheck source=/dev/null
. "$completion" || exit 1

n=0
failed=0

# complete LINE: fills COMP_WORDS as bash does (words split at spaces and
# around "="; a trailing space starts an empty word) and runs the function
complete_line()
{
	local line=$1 word=""
	local -a split=()
	local i c
	for ((i = 0; i < ${#line}; i++)); do
		c=${line:i:1}
		if [[ $c == " " ]]; then
			[[ -n $word ]] && split+=("$word")
			word=""
		elif [[ $c == "=" ]]; then
			[[ -n $word ]] && split+=("$word")
			split+=("=")
			word=""
		else
			word+=$c
		fi
	done
	if [[ -n $word || $line == *" " || $line == *"=" ]]; then
		split+=("$word")
	fi
	COMP_WORDS=("${split[@]}")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMP_LINE=$line
	COMP_POINT=${#line}
	COMPREPLY=()
	_codechat codechat "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
}

# check LINE EXPECTED...: the completions, in any order, are exactly these
check()
{
	local line=$1
	shift
	complete_line "$line"
	local got want
	got=$(printf '%s\n' "${COMPREPLY[@]}" | sed '/^$/d' | sort | tr '\n' ' ')
	want=$(printf '%s\n' "$@" | sed '/^$/d' | sort | tr '\n' ' ')
	n=$((n + 1))
	if [[ $got == "$want" ]]; then
		echo "ok $n - '$line'"
	else
		echo "not ok $n - '$line'"
		echo "#   expected: $want"
		echo "#   got:      $got"
		failed=$((failed + 1))
	fi
}

# check_has LINE WORD...: the completions include these
check_has()
{
	local line=$1 w missing=""
	shift
	complete_line "$line"
	for w in "$@"; do
		printf '%s\n' "${COMPREPLY[@]}" | grep -qxF -- "$w" || missing+=" $w"
	done
	n=$((n + 1))
	if [[ -z $missing ]]; then
		echo "ok $n - '$line' offers $*"
	else
		echo "not ok $n - '$line' lacks$missing"
		failed=$((failed + 1))
	fi
}

check "codechat " send history watch chat rooms who status config init
check "codechat h" history
check "codechat --server ws://x:1 s" send status
check "codechat --nick alice -v w" watch who
check "codechat --color=" auto always never
check "codechat --color=al" always
check "codechat --color " auto always never
check "codechat --log-format=" text json
check "codechat --log-format=j" json
check_has "codechat --" --server --nick --json --color= --verbose --quiet --log-format= \
	--version --help --init
check "codechat --ver" --verbose --version
check "codechat send --" --room --to --code --file --help --server --nick --json --color= \
	--verbose --quiet --log-format= --ca-file
check "codechat send --r" --room
check "codechat send --room " ""
check "codechat history --l" --limit --log-format=
check_has "codechat history --" --room --limit --before --after --with
check "codechat watch --n" --notify --notify= --nick
check "codechat watch --notify=" mentions all off
check "codechat watch --notify=a" all
check "codechat chat --r" --room
check "codechat who --r" --room
check "codechat init --t" --token
check "codechat --init --t" --token
check_has "codechat init --" --server --nick --token
check "codechat config " list get set reset
check "codechat config r" reset
check "codechat config get " server-url nickname default-room notify color history-limit
check "codechat config set h" history-limit
check "codechat config set notify " off mentions all
check "codechat config set color n" never
check "codechat config set nickname " ""
check "codechat config list " ""
check "codechat -v config set notify m" mentions
check "codechat rooms " ""

echo "1..$n"
[[ $failed -eq 0 ]]
