// Stand-in for Jenkins' @Library annotation, so a Jenkinsfile that loads a shared library compiles here.
import java.lang.annotation.Retention
import java.lang.annotation.RetentionPolicy

@Retention(RetentionPolicy.SOURCE)
@interface Library {
    String[] value()
}
