"""Which ARG names a Dockerfile declares: the runner passes only those built-in build args to buildah
(the others made every build log say "one or more build args were not consumed")."""

from builds.context_check import declared_args


def test_an_arg_before_from_is_declared():
    assert declared_args("ARG SOURCE_COMMIT\nFROM scratch\n") == {"SOURCE_COMMIT"}


def test_an_arg_inside_a_stage_is_declared():
    assert declared_args("FROM scratch AS base\nARG DOCKER_TAG=latest\nFROM base\narg image_name\n") == {
        "DOCKER_TAG", "image_name"}


def test_one_arg_line_may_declare_several_names_with_quoted_defaults():
    assert declared_args('FROM scratch\nARG A B="two words" C=${A:-x}\n') == {"A", "B", "C"}


def test_a_continued_arg_line_and_comments():
    text = "# ARG NOT_THIS\nFROM scratch\nARG FIRST \\\n    SECOND=2\nRUN echo ARG THIRD\n"
    assert declared_args(text) == {"FIRST", "SECOND"}


def test_a_dockerfile_without_arg_declares_nothing():
    assert declared_args("FROM scratch\nCOPY . /\n") == set()


def test_an_unbalanced_quote_does_not_fail_and_still_yields_the_name():
    assert "MSG" in declared_args('FROM scratch\nARG MSG="oops OTHER\n')
